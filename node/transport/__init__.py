"""gRPC edges of the node: the federation servicer, the local API, the auth interceptor."""
