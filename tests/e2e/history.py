"""A team's history (runs, metrics, a registered model, versions, aliases), written and read back with any MLflow >= 2.3.

``fill`` and ``snapshot`` use only client calls that MLflow 2.9 and 3.x share, so an older
MLflow in a throwaway venv can write the history (``python history.py fill``, the tracking
URI in MLFLOW_TRACKING_URI) and the current one can compare it after an upgrade or restore.
This file imports nothing of the project, for that venv's sake.
"""

from __future__ import annotations

import json
import os
import sys

MODEL = "history-model"


def fill(client, experiment: str = "history") -> None:
    experiment_id = client.create_experiment(experiment)
    run_ids = []
    for i in range(2):
        run = client.create_run(experiment_id, run_name=f"run-{i}", tags={"team": "a", "index": str(i)})
        run_id = run.info.run_id
        client.log_param(run_id, "alpha", str(0.1 * (i + 1)))
        for step in range(3):
            client.log_metric(run_id, "loss", 1.0 / (step + 1 + i), step=step)
        client.set_terminated(run_id)
        run_ids.append(run_id)
    client.create_registered_model(MODEL, description="written before the upgrade")
    for run_id in run_ids:
        client.create_model_version(MODEL, source=f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias(MODEL, "champion", "2")
    client.set_registered_model_alias(MODEL, "previous", "1")


def snapshot(client) -> dict:
    """Everything ``fill`` wrote, as JSON-comparable data (system tags aside)."""
    runs = {}
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            run_id = run.info.run_id
            history = sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)
            runs[run_id] = {
                "experiment": experiment.name,
                "name": run.info.run_name,
                "status": run.info.status,
                "params": run.data.params,
                "metrics": run.data.metrics,
                "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
                "loss": [[m.step, m.value] for m in history],
            }
    models = {}
    for model in client.search_registered_models():
        # Versions are text in MLflow's API; 2.x returns alias targets as numbers.
        versions = {str(v.version): {"run_id": v.run_id, "source": v.source} for v in client.search_model_versions(f"name='{model.name}'")}
        aliases = {alias: str(version) for alias, version in sorted(model.aliases.items())}
        models[model.name] = {"description": model.description, "aliases": aliases, "versions": versions}
    return json.loads(json.dumps({"runs": runs, "models": models}, sort_keys=True))


if __name__ == "__main__":
    from mlflow import MlflowClient

    uri = os.environ["MLFLOW_TRACKING_URI"]
    mlflow_client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if sys.argv[1:] == ["fill"]:
        fill(mlflow_client)
    print(json.dumps(snapshot(mlflow_client), sort_keys=True))
