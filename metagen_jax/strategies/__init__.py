"""Search strategies over integer genomes."""
