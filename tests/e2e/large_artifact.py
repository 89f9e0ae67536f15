"""A notebook cell moving one large file through MLflow, with only the env the PodDefault injects.

``model``: logs a pyfunc model whose weights are DATA_FILE, loads it back through the
tracking URI and hashes the weights it got. ``artifact``: logs DATA_FILE as a run artifact
and records the error, if any (for a client that sends it through the server).
Writes what happened to RESULT_JSON.

Usage: python large_artifact.py RESULT_JSON DATA_FILE EXPERIMENT model|artifact
"""

from __future__ import annotations

import hashlib
import json
import sys
import time


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def main(result_path: str, data_file: str, experiment: str, mode: str) -> None:
    import mlflow
    import mlflow.pyfunc

    class Weights(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            self.weights = context.artifacts["weights"]

        def predict(self, context, model_input):
            return model_input

    mlflow.set_experiment(experiment)
    result: dict = {}
    with mlflow.start_run() as run:
        result["run_id"] = run.info.run_id
        started = time.monotonic()
        if mode == "artifact":
            try:
                mlflow.log_artifact(data_file, artifact_path="raw")
                result["error"] = None
            except Exception as exc:  # the test asserts on what the client saw
                result["error"] = f"{type(exc).__name__}: {exc}"[:600]
            result["upload_seconds"] = time.monotonic() - started
        else:
            info = mlflow.pyfunc.log_model(name="model", python_model=Weights(), artifacts={"weights": data_file})
            result["model_uri"] = info.model_uri
            result["upload_seconds"] = time.monotonic() - started
            started = time.monotonic()
            loaded = mlflow.pyfunc.load_model(info.model_uri)
            result["download_seconds"] = time.monotonic() - started
            weights = loaded.unwrap_python_model().weights
            result["loaded_sha256"] = sha256(weights)
    with open(result_path, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main(*sys.argv[1:5])
