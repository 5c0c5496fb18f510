"""Agent-society simulations: configs, launch and control, the orchestrated run, results, exports."""
