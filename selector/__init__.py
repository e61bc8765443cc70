"""MetaInf: descriptions, embeddings, the meta-learner, baselines, evaluation, selection."""
