"""What a data scientist runs in a Kubeflow notebook, with only the env the PodDefault injects.

Trains a small regression on scikit-learn's bundled diabetes data, logs it with a
signature to the tracking server named by ``MLFLOW_TRACKING_URI``, registers it and
points an alias at the new version; keeps the training data under the profile's own
prefix (``PROFILE_S3_URI``) with the injected S3 settings. Writes what the test compares against to the
JSON file given as the first argument: ids, and the model's own predictions on a
held-out sample.

Usage: python notebook.py RESULT_JSON REGISTERED_MODEL ALIAS EXPERIMENT [ALPHA]
"""

from __future__ import annotations

import json
import os
import sys


def main(result_path: str, registered_model: str, alias: str, experiment: str, alpha: str = "0.5") -> None:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import train_test_split

    if "MLFLOW_TRACKING_URI" not in os.environ:
        sys.exit("MLFLOW_TRACKING_URI is not set: the PodDefault did not inject it")
    data = load_diabetes(as_frame=True)
    x_train, x_test, y_train, _ = train_test_split(data.data, data.target, test_size=8, random_state=7)
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        model = Ridge(alpha=float(alpha)).fit(x_train, y_train)
        mlflow.log_params({"alpha": float(alpha), "rows": len(x_train)})
        mlflow.log_metric("r2_train", float(model.score(x_train, y_train)))
        signature = infer_signature(x_train, model.predict(x_train))
        info = mlflow.sklearn.log_model(
            model, name="model", signature=signature, input_example=x_train.head(2), registered_model_name=registered_model
        )
    client = mlflow.MlflowClient()
    version = info.registered_model_version
    client.set_registered_model_alias(registered_model, alias, str(version))
    result = {"dataset_uri": save_dataset(x_train)}
    result |= {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_uri": info.model_uri,
        "registered_model": registered_model,
        "version": str(version),
        "alias": alias,
        "inputs": x_test.to_dict(orient="list"),
        "predictions": model.predict(x_test).tolist(),
    }
    with open(result_path, "w") as out:
        json.dump(result, out)


def save_dataset(frame) -> str | None:
    """Keep the training data in the profile's own S3 prefix, with the S3 settings the PodDefault injects."""
    profile_uri = os.environ.get("PROFILE_S3_URI")
    if not profile_uri:
        return None
    import boto3

    bucket, _, prefix = profile_uri.removeprefix("s3://").partition("/")
    key = f"{prefix.rstrip('/')}/e2e/diabetes-train.csv"
    # boto3 reads AWS_ENDPOINT_URL, AWS_DEFAULT_REGION and the keys from the environment.
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=frame.to_csv(index=False).encode())
    return f"s3://{bucket}/{key}"


if __name__ == "__main__":
    main(*sys.argv[1:6])
