"""Local multi-agency clusters and scripted drills against them (`accord cluster`, `accord drill`).

Everything here drives nodes from outside, as an operator would: node processes, the local API
through `node.client.connect`, the federation authority's files, and fault-injecting proxies on
loopback between every ordered pair of nodes.
"""
