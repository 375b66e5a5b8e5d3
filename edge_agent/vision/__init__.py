"""The vision pipeline: sources, detection, tracking, face quality, classification, counting
and the pure ``Pipeline.step`` that joins them. Knows nothing of outboxes, brokers or stores."""
