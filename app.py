"""Agora's Chalice application: registration only; routes live in chalicelib.api, rules in chalicelib.domain."""
from chalice import Chalice

from chalicelib.api.auth import auth
from chalicelib.api.billing import billing_bp
from chalicelib.api.http import MULTIPART, rewrite_chalice_errors
from chalicelib.api.mlflow import mlflow_bp
from chalicelib.api.mlflow_ui import mlflow_ui_bp
from chalicelib.api.openapi import openapi_bp
from chalicelib.api.sim_agents import sim_agents_bp
from chalicelib.api.sim_configs import sim_configs_bp
from chalicelib.api.sim_experiments import sim_experiments_bp
from chalicelib.api.sim_runs import sim_runs_bp
from chalicelib.api.tracking_artifacts import artifacts_bp
from chalicelib.api.tracking_experiments import experiments_bp
from chalicelib.api.tracking_runs import runs_bp
from chalicelib.events.artifact_uploads import uploads_bp
from chalicelib.events.purge import purge_bp
from chalicelib.observability import observe
from chalicelib.workflows.simulation import simulation_bp

app = Chalice(app_name="agora", configure_logs=False)
app.api.binary_types.append(MULTIPART)
app.register_middleware(observe, "all")
app.register_middleware(rewrite_chalice_errors, "http")

for blueprint in (auth, openapi_bp, experiments_bp, runs_bp, artifacts_bp, uploads_bp, sim_configs_bp, sim_agents_bp,
                  sim_runs_bp, sim_experiments_bp, simulation_bp, billing_bp, purge_bp, mlflow_bp, mlflow_ui_bp):
    app.register_blueprint(blueprint)
