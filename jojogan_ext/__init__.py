"""JoJoGAN one-shot face stylization: the core package.

Plain Python + torch. It never imports the web UI (`modules`); the web UI glue lives in `scripts/`.
"""

__version__ = "0.1.0"
