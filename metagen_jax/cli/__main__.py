from metagen_jax.cli import main

main()
