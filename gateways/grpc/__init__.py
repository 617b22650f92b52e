"""The gRPC gateway: the original pb.ChatService, chatservice.v1, health and reflection."""

from gateways.grpc.server import GrpcGateway

__all__ = ["GrpcGateway"]
