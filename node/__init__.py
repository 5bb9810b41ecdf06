"""The Accord node daemon."""
