"""One codec per wire format: that format's JSON to and from the neutral chat model (llm_api.chat_model)."""

# What reading a JSON value of an unexpected shape raises: a missing key, a list for a dict, "x" for an int,
# or an infinite float for an int. The adapters answer it as an unusable upstream response (a 502).
WRONG_SHAPE = (AttributeError, KeyError, TypeError, ValueError, OverflowError)
