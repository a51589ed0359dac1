"""The IC chip of the My Number Card: APDU emulator, card files, transports, and the card client."""
