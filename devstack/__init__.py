"""The local stack: moto in-process, resources from infra/, Lambda and event dispatch to app handlers."""
