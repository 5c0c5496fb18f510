"""Step Functions task handlers: thin adapters from a state's input to chalicelib.domain.sim_runtime."""
