"""Files in: safetensors, .npy and .pt headers, text and Arrow tables, features and weights
as other tools write them."""
