"""Marks the installed agent (tickloop_agent_hello) as a regular package; the agent is main.py."""
