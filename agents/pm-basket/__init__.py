"""Marks the installed agent (tickloop_agent_pm_basket) as a regular package; the agent is main.py."""
