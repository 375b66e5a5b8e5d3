"""Model assets (manifest + resolver), model cards, and training / evaluation of classifiers."""
