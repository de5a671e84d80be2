"""Marks the installed agent (tickloop_agent_dca) as a regular package; the agent is main.py."""
