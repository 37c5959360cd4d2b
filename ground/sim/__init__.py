"""Scenario simulator internals: truth orbit, attitude, environment, sensor models."""
