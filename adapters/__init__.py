"""Platform adapters: each translates one platform to the core and back."""
