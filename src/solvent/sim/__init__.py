"""The cascade simulator: scenarios drive the engine, forced sales feed back into the price."""
