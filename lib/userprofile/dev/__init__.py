"""Developer tools: the synthetic data generator, the bench and its peers, and evaluation
against the generator's planted truth. Runtime code never imports this package."""
