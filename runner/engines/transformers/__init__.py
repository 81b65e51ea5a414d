"""The in-process engine: a transformers causal LM (the built-in model or any other) in one continuous batch."""
