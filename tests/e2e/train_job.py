"""The training command the e2e declares as a Job (``python -c`` with this file's text): train, log, register.

Reads only its env: MLflow's (tracking URI, experiment) from the platform, ALPHA and
REGISTERED_MODEL from the job's own ``env``. Trains, logs and registers a version.
"""

import os

import mlflow
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

x, y = load_diabetes(return_X_y=True, as_frame=True)
with mlflow.start_run(run_name="training-job"):
    model = Ridge(alpha=float(os.environ["ALPHA"])).fit(x, y)
    mlflow.log_param("alpha", os.environ["ALPHA"])
    mlflow.log_metric("r2_train", float(model.score(x, y)))
    mlflow.sklearn.log_model(model, name="model", input_example=x.head(2), registered_model_name=os.environ["REGISTERED_MODEL"])
