"""Setting up: the distro, configurator and pre-instrument entry points (``entry_points``),
``configure()`` for apps without ``opentelemetry-instrument`` (``configure``), and attaching our
processors and propagator to providers that already exist (``attach``). May import every layer
below it; only ``cli`` imports it. Empty on purpose: importing the package loads no entry point."""
