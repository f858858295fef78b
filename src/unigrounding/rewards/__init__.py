"""Reward functions of the paradigms' RL stages, pure and tested (no model needed)."""
