"""kube-lite: a small local Kubernetes (API server, controllers, kubelet) for tests."""
