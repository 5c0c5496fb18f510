"""The reference agent-society simulation engine: citizens on a map over simulated days."""
