"""gRPC servicers: decode the request, call the domain code, encode the answer."""
