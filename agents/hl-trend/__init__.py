"""Marks the installed agent (tickloop_agent_hl_trend) as a regular package; the agent is main.py."""
