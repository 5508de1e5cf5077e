"""The flows part of REST API v1 (SPEC §11), wired in maestra/api/urls.py:

- views.py: flows as documents, their lifecycle, versions, statistics and
  audience preview; event ingestion; a customer's activity;
- serializers.py: the shapes those views read and answer;
- schema.py: the OpenAPI parts that belong to flows (the FlowDocument
  component, examples), a drf-spectacular postprocessing hook named in
  settings.SPECTACULAR_SETTINGS;
- privacy.py: erase and export a customer (flows/privacy.py).
"""
