"""Classical methods that users compare implicit regularization with."""

__all__: list[str] = []
