"""Generated gRPC code for protos/ (make protos); do not edit."""
