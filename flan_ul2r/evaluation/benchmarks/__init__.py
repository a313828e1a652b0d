"""One module per benchmark: reads its public file layout and builds the protocol's prompts."""
