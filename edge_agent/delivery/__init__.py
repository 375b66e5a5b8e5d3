"""Getting what the pipeline produced off the device: the durable outbox, the MQTT sender,
the crop uploader, the heartbeat, and the local JSON-lines sink."""
