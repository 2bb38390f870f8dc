"""Namespace IRIs the node reads and writes (one place for all of them)."""

EDC = "https://w3id.org/edc/v0.0.1/ns/"
ODRL = "http://www.w3.org/ns/odrl/2/"
DSPACE = "https://w3id.org/dspace/2025/1/"
DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"
XSD = "http://www.w3.org/2001/XMLSchema#"
BPC = "https://w3id.org/battery-passport-connector/ns/"

ODRL_CONTEXT_URL = "http://www.w3.org/ns/odrl.jsonld"
DSP_CONTEXT_URL = "https://w3id.org/dspace/2025/1/context.jsonld"
DSP_ODRL_PROFILE_URL = "https://w3id.org/dspace/2025/1/odrl-profile.jsonld"
# The Catena-X ODRL profile of 2025-9 (the contexts Tractus-X EDC 0.12 and 0.13 send and bundle).
CX_POLICY_CONTEXT_URL = "https://w3id.org/catenax/2025/9/policy/context.jsonld"
CX_ODRL_CONTEXT_URL = "https://w3id.org/catenax/2025/9/policy/odrl.jsonld"

# The context of every management API answer, as EDC's Management API v3 writes it.
EDC_OUTPUT_CONTEXT = {"@vocab": EDC, "edc": EDC, "odrl": ODRL}

# EDC's Management API v4 context: every v4 body names it in its @context array, every v4 answer carries it.
EDC_MANAGEMENT_V2_CONTEXT_URL = "https://w3id.org/edc/connector/management/v2"

# EDC's own context of DSP messages: it defines the QuerySpec and Criterion terms of a catalog request's filter.
EDC_DSPACE_CONTEXT_URL = "https://w3id.org/edc/dspace/v0.0.1"
