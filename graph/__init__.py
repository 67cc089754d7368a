"""The self-engineering graph: state, context, prompts, models, wiring and routing.

Import the compiled graph from `graph.builder`; this package module stays light so `python -m graph`
and the nodes can import its parts without building anything.
"""
