"""The node's services: the logic behind the handlers, one concern per module."""
