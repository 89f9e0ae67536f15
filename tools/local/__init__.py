"""The local engine and cluster: the real Pulumi CLI and providers (engine) against an embedded control plane on 127.0.0.1 (cluster)."""
