"""A Kubernetes API client for code that runs beside the provider (preflight, the dashboard link's dynamic provider)."""

from __future__ import annotations

import os
from typing import Any


def api_client(kubeconfig: str | None, context: str | None) -> Any:
    """The client for the provider's ``kubernetes:kubeconfig`` (a path or the document itself) and ``kubernetes:context``.

    Without a kubeconfig: KUBECONFIG as it is now (the client reads its default once, at import), else
    ``~/.kube/config``, as the provider does; then the in-cluster service account.
    """
    import yaml
    from kubernetes import client, config

    if kubeconfig and not os.path.exists(kubeconfig):
        return config.new_client_from_config_dict(yaml.safe_load(kubeconfig), context=context)
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        return config.new_client_from_config(config_file=path, context=context)
    except config.ConfigException:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
