"""One codec per wire format: that format's JSON to and from the neutral chat model (llm_api.chat_model)."""
