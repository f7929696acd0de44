"""runtime: the ground floor every stage stands on.

Config, topic names, the Kafka plumbing (transactional consume-transform-produce loop, topic
admin, changelog restore, codecs) and metrics. It imports no stage.
"""
