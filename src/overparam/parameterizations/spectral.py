"""Spectral neural networks (SNN): ``X = sum_k alpha_k Gamma(U_k V_k^T)``.

Paper: Chu, Ghosh, Lam, Mukherjee, "Implicit regularization via spectral neural networks and
non-linear matrix sensing". ``Gamma(Z) = Phi gamma(Sigma) Psi^T`` applies a scalar activation
``gamma`` to the singular values of ``Z = Phi Sigma Psi^T``.

Two parameterizations live here:

- :class:`SpectralNetwork`, the general network on full matrices ``U_k, V_k``. Its gradient
  needs the derivative of a singular-value function of a rectangular matrix, which no
  well-kept library provides for NumPy (autodiff frameworks do, but are not dependencies
  here), so :func:`singular_value_function_vjp` writes it by hand (divided differences).
- :class:`AlignedSpectralNetwork`, the same network in the aligned case of the paper
  (Assumptions 1-2): the factors stay diagonal in the ``(Phi, Psi)`` basis, and the network
  reduces to ``K`` pairs of diagonals. Its gradient is Theorem 1 of the paper.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from .._validation import check_array, check_positive, check_random_state
from .base import Parameterization, Params

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "AlignedSpectralNetwork",
    "DeepSpectralNetwork",
    "SpectralNetwork",
    "get_activation",
    "singular_value_function",
    "singular_value_function_vjp",
]


@dataclass(frozen=True)
class Activation:
    """A scalar activation ``gamma`` and its derivative, applied to singular values.

    Parameters
    ----------
    name : str
    function : callable
        ``gamma``, vectorized over NumPy arrays.
    derivative : callable
        ``gamma'``, vectorized.
    """

    name: str
    function: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]

    def __call__(self, x):
        return self.function(x)

    @property
    def vanishes_at_zero(self) -> bool:
        """Whether ``gamma(0) = 0``; otherwise ``Gamma`` is discontinuous at singular matrices."""
        return bool(abs(float(self.function(np.zeros(1))[0])) < 1e-12)


def _tanh_prime(x):
    return 1.0 - np.tanh(x) ** 2


def _sigmoid_prime(x):
    s = expit(x)
    return s * (1.0 - s)


def _clipped_relu(x):
    return np.clip(x, 0.0, 1.0)


def _clipped_relu_prime(x):
    # Right derivative at 0: singular values are >= 0, and a diagonal started at 0 can grow.
    return ((x >= 0.0) & (x < 1.0)).astype(float)


_SHARPNESS = 10.0


def _smooth_clipped_relu(x):
    # softplus(b x)/b - softplus(b (x - 1))/b: a smooth, increasing version of clip(x, 0, 1).
    b = _SHARPNESS
    return (np.logaddexp(0.0, b * x) - np.logaddexp(0.0, b * (x - 1.0))) / b


def _smooth_clipped_relu_prime(x):
    b = _SHARPNESS
    return expit(b * x) - expit(b * (x - 1.0))


#: Built-in activations by name.
ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", np.tanh, _tanh_prime),
    "sigmoid": Activation("sigmoid", expit, _sigmoid_prime),
    "clipped-relu": Activation("clipped-relu", _clipped_relu, _clipped_relu_prime),
    "smooth-clipped-relu": Activation("smooth-clipped-relu", _smooth_clipped_relu,
                                      _smooth_clipped_relu_prime),
    "linear": Activation("linear", lambda x: np.asarray(x, dtype=float),
                         lambda x: np.ones_like(np.asarray(x, dtype=float))),
}


def get_activation(activation) -> Activation:
    """An :class:`Activation` from a name, an ``Activation`` or a pair ``(gamma, gamma')``."""
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        try:
            return ACTIVATIONS[activation]
        except KeyError:
            raise ValueError(f"unknown activation {activation!r}; known: "
                             f"{', '.join(sorted(ACTIVATIONS))}, or a pair (gamma, gamma')"
                             ) from None
    if (isinstance(activation, tuple | list) and len(activation) == 2
            and all(callable(f) for f in activation)):
        return Activation("custom", activation[0], activation[1])
    raise TypeError("activation must be a name, an Activation or a pair of callables "
                    f"(gamma, gamma'), got {activation!r}")


# --------------------------------------------------------------------------------------------
# Singular-value functions of rectangular matrices and their derivative
# --------------------------------------------------------------------------------------------
def _svd_failed(error, flag):
    raise np.linalg.LinAlgError("SVD did not converge")


try:  # numpy's kernel of ``np.linalg.svd(..., full_matrices=False)`` (the same LAPACK call)
    from numpy.linalg import _umath_linalg

    _THIN_SVD = _umath_linalg.svd_s
except (ImportError, AttributeError):  # pragma: no cover - a numpy without it
    _THIN_SVD = None


def _thin_svd(Z):
    """``np.linalg.svd(Z, full_matrices=False)`` for a float64 stack ``Z``, bit for bit.

    The networks take several SVDs of small stacks at every gradient step; ``np.linalg.svd``
    spends about a fifth of such a call on checks and conversions that a float64 stack does
    not need. This calls its kernel directly, with the same floating-point error handling
    (non-convergence raises :class:`numpy.linalg.LinAlgError`); ``np.linalg.svd`` itself for
    any other input or where the kernel is missing (tested equal,
    ``tests/test_spectral_core.py``).
    """
    if (_THIN_SVD is None or type(Z) is not np.ndarray or Z.dtype != np.float64 or Z.ndim < 2
            or Z.size == 0):
        return tuple(np.linalg.svd(Z, full_matrices=False))
    with np.errstate(call=_svd_failed, invalid="call", over="ignore", divide="ignore",
                     under="ignore"):
        return _THIN_SVD(Z, signature="d->ddd")


def singular_value_function(Z, f) -> np.ndarray:
    """``F(Z) = Phi f(Sigma) Psi^T`` for ``Z = Phi Sigma Psi^T`` (thin SVD), batched.

    Parameters
    ----------
    Z : ndarray of shape (..., n1, n2)
    f : callable
        Applied to the ``min(n1, n2)`` singular values.
    """
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    return (U * f(s)[..., None, :]) @ Vt


_TINY = np.finfo(float).tiny
_GAP_RTOL = 1e-5  # see singular_value_function_vjp


def singular_value_function_vjp(Z, G, f, df, *, rtol: float = _GAP_RTOL, svd=None) -> np.ndarray:
    """Pull back ``G = dL/dF`` through ``F(Z) = Phi f(Sigma) Psi^T``: returns ``dL/dZ``.

    With the thin SVD ``Z = U S V^T`` (``n1 <= n2``; otherwise work on the transpose),
    ``Gb = U^T G V`` and singular values ``s``, the derivative of a singular-value function is
    (Lewis and Sendov's formula for rectangular matrices)

        ``dL/dZ = U [ A o Gb + B o Gb^T ] V^T + U diag(f(s)/s) U^T G (I - V V^T)``

    where ``A = (D- + D+)/2``, ``B = (D- - D+)/2``, the divided differences are
    ``D-_ij = (f(s_i) - f(s_j)) / (s_i - s_j)`` and ``D+_ij = (f(s_i) + f(s_j)) / (s_i + s_j)``,
    and the diagonal is ``f'(s_i) Gb_ii``. The last term only exists for rectangular ``Z``.

    Near-equal singular values (``|s_i - s_j| <= rtol * max(s_i, s_j)``, which includes
    repeated ones) use the derivative limit ``(f'(s_i) + f'(s_j)) / 2``; zero sums use the
    same limit (exact when ``f(0) = 0``). When ``f(0) != 0`` the map is discontinuous at
    rank-deficient ``Z`` and the gradient is large near them: that is the function, not a
    numerical problem.

    Written by hand (NumPy has no automatic differentiation); checked against finite
    differences in the tests, near-degenerate matrices included.

    Parameters
    ----------
    Z : ndarray of shape (..., n1, n2)
    G : ndarray of shape (..., n1, n2)
    f, df : callable
        The scalar function and its derivative.
    rtol : float, default=1e-5
        Relative gap below which two singular values count as equal (about the cube root of
        machine precision, balancing cancellation against the error of the limit).
    svd : tuple, optional
        The thin SVD ``(U, s, Vt)`` of ``Z`` if already computed.

    Returns
    -------
    ndarray of shape (..., n1, n2)
    """
    Z = np.asarray(Z, dtype=float)
    G = np.asarray(G, dtype=float)
    svd = np.linalg.svd(Z, full_matrices=False) if svd is None else svd
    rectangular = Z.shape[-2] != Z.shape[-1]
    return _pull_back(svd, G, _pullback_coefficients(svd[1], f, df, rtol, rectangular))


def _pullback_coefficients(s, f, df, rtol, rectangular):
    """The part of :func:`singular_value_function_vjp` that depends on the singular values only.

    Returns ``(P, M, ratio)``: ``P = D- + D+`` and ``M = D- - D+`` with diagonals ``2 f'(s_i)``
    and 0 (so that ``(P o Gb + M o Gb^T) / 2`` has the diagonal ``f'(s_i) Gb_ii``), and
    ``f(s)/s`` for the rectangular term (None for square matrices). ``s`` may stack the
    singular values of several matrices (e.g. every layer of a deep network): computing
    these once per gradient instead of once per matrix saves most of the NumPy calls.
    """
    fs, dfs = f(s), df(s)
    si, sj = s[..., :, None], s[..., None, :]
    fi, fj = fs[..., :, None], fs[..., None, :]
    dmean = 0.5 * (dfs[..., :, None] + dfs[..., None, :])
    diff = si - sj
    close = np.abs(diff) <= rtol * np.maximum(si, sj)  # relative gap, s >= 0
    d_minus = np.where(close, dmean, (fi - fj) / np.where(close, 1.0, diff))
    total = si + sj
    zero_sum = total <= _TINY
    ratio = None
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d_plus = np.where(zero_sum, dmean, (fi + fj) / np.where(zero_sum, 1.0, total))
        if rectangular:
            zero = s <= _TINY
            ratio = np.where(zero, dfs, fs / np.where(zero, 1.0, s))
    P, M = d_minus + d_plus, d_minus - d_plus
    _diagonals(P)[...] = 2.0 * dfs
    _diagonals(M)[...] = 0.0
    return P, M, ratio


def _diagonals(A) -> np.ndarray:
    """A writable view of the diagonals of a stack of square matrices: a strided view when
    ``A`` is C-contiguous (cheaper than ``np.einsum("...ii->...i", A)`` on small stacks)."""
    if not A.flags.c_contiguous:
        return np.einsum("...ii->...i", A)
    n = A.shape[-1]
    return A.reshape(*A.shape[:-2], n * n)[..., :: n + 1]


def _pull_back(svd, G, coefficients):
    """``dL/dZ`` from the thin SVD of ``Z``, ``G = dL/dF`` and :func:`_pullback_coefficients`."""
    U, s, Vt = svd
    if U.shape[-2] > Vt.shape[-1]:  # n1 > n2: the same formula on the transpose
        transposed = (Vt.swapaxes(-1, -2), s, U.swapaxes(-1, -2))
        return _pull_back(transposed, G.swapaxes(-1, -2), coefficients).swapaxes(-1, -2)
    P, M, ratio = coefficients
    Ut = U.swapaxes(-1, -2)
    GV = G @ Vt.swapaxes(-1, -2)
    Gb = Ut @ GV
    out = U @ (0.5 * (P * Gb + M * Gb.swapaxes(-1, -2))) @ Vt
    if Vt.shape[-1] > s.shape[-1]:
        residual = G - GV @ Vt  # G restricted to the complement of the row space
        out = out + (U * ratio[..., None, :]) @ (Ut @ residual)
    return out


def _mix(weights, matrices) -> np.ndarray:
    """``sum_k weights[..., k] matrices[k]``: a stack ``(K, n1, n2)`` mixed by ``(..., K)``.

    ``np.tensordot`` does the same but costs several times more on the small stacks of these
    networks (its overhead, not its arithmetic, at every iteration).
    """
    K = matrices.shape[0]
    return (weights @ matrices.reshape(K, -1)).reshape(weights.shape[:-1] + matrices.shape[1:])


# --------------------------------------------------------------------------------------------
# The general network
# --------------------------------------------------------------------------------------------
class SpectralNetwork(Parameterization):
    """``X = sum_k alpha_k Gamma(U_k V_k^T)``, all of ``alpha, U_k, V_k`` trained.

    Parameters are ``(alpha, U, V)`` with ``alpha`` of shape ``(K,)``, ``U`` of shape
    ``(K, n1, d)`` and ``V`` of shape ``(K, n2, d)``. The gradient uses
    :func:`singular_value_function_vjp`, so it holds for arbitrary sensing matrices.

    Parameters
    ----------
    n_rows, n_cols : int
        Shape ``(n1, n2)`` of the signal.
    n_components : int, default=2
        Number ``K`` of spectral neurons.
    width : int, optional
        Inner dimension ``d`` of the factors; default ``max(n1, n2)`` (the paper's
        over-parameterized regime ``d >= n2 >= n1``).
    activation : str, Activation or (callable, callable), default="tanh"
        ``"tanh"``, ``"sigmoid"``, ``"clipped-relu"``, ``"smooth-clipped-relu"``,
        ``"linear"`` or a user pair ``(gamma, gamma')``.
    alpha_init : "uniform" or float, default="uniform"
        Initial ``alpha_k``: uniform on ``[0, 1]`` (the paper) or this constant.
    """

    def __init__(self, n_rows: int, n_cols: int, n_components: int = 2, width: int | None = None,
                 activation="tanh", alpha_init="uniform"):
        for value, name in ((n_rows, "n_rows"), (n_cols, "n_cols"),
                            (n_components, "n_components")):
            check_positive(value, name, integer=True)
        self.n_rows, self.n_cols = int(n_rows), int(n_cols)
        self.n_components = int(n_components)
        self.width = max(self.n_rows, self.n_cols) if width is None else int(width)
        check_positive(self.width, "width", integer=True)
        self.activation = get_activation(activation)
        if not (alpha_init == "uniform" or isinstance(alpha_init, int | float)):
            raise ValueError(f"alpha_init must be 'uniform' or a number, got {alpha_init!r}")
        self.alpha_init = alpha_init
        self.signal_shape = (self.n_rows, self.n_cols)

    def _alpha0(self, rng) -> np.ndarray:
        K = self.n_components
        if self.alpha_init == "uniform":
            return rng.uniform(0.0, 1.0, K)
        return np.full(K, float(self.alpha_init))

    def init(self, scale: float, rng=None) -> Params:
        """Diagonal factors with entries ``scale * (1 + 0.01 eps)``, ``eps`` standard normal.

        This is the paper's initialization for general sensing matrices (Sec. 5.2:
        ``1e-4 + 1e-6 eps``). ``alpha`` follows ``alpha_init``.
        """
        check_positive(scale, "init_scale")
        rng = check_random_state(rng)
        K, d = self.n_components, self.width
        U = np.zeros((K, self.n_rows, d))
        V = np.zeros((K, self.n_cols, d))
        iu, iv = np.arange(min(self.n_rows, d)), np.arange(min(self.n_cols, d))
        U[:, iu, iu] = scale * (1.0 + 0.01 * rng.standard_normal((K, iu.size)))
        V[:, iv, iv] = scale * (1.0 + 0.01 * rng.standard_normal((K, iv.size)))
        return (self._alpha0(rng), U, V)

    def spectral_init(self, left, right, u_diag, v_diag, alpha, rotation=None) -> Params:
        """Assumption 2 of the paper: ``U_k = Phi Ubar_k G``, ``V_k = Psi Vbar_k G``.

        Parameters
        ----------
        left, right : ndarray
            Orthogonal ``Phi`` (n1, n1) and ``Psi`` (n2, n2).
        u_diag, v_diag : ndarray of shape (K, r)
            Diagonals of ``Ubar_k`` (n1, d) and ``Vbar_k`` (n2, d), ``r = min(n1, n2)``.
        alpha : ndarray of shape (K,)
        rotation : ndarray of shape (d, d), optional
            Orthogonal ``G``; identity by default.
        """
        K, d = self.n_components, self.width
        r = min(self.n_rows, self.n_cols)
        u_diag = check_array(u_diag, "u_diag", ndim=2)
        v_diag = check_array(v_diag, "v_diag", ndim=2)
        if u_diag.shape != (K, r) or v_diag.shape != (K, r):
            raise ValueError(f"u_diag and v_diag must have shape {(K, r)}")
        if d < r:
            raise ValueError(f"the spectral init needs width >= min(n1, n2) = {r}")
        G = np.eye(d) if rotation is None else check_array(rotation, "rotation", ndim=2)
        Ub = np.zeros((K, self.n_rows, d))
        Vb = np.zeros((K, self.n_cols, d))
        idx = np.arange(r)
        Ub[:, idx, idx] = u_diag
        Vb[:, idx, idx] = v_diag
        U = np.asarray(left) @ Ub @ G
        V = np.asarray(right) @ Vb @ G
        return (check_array(alpha, "alpha", ndim=1).copy(), U, V)

    def products(self, params: Params) -> np.ndarray:
        """The inner matrices ``Z_k = U_k V_k^T``, shape ``(K, n1, n2)``."""
        return params[1] @ params[2].swapaxes(-1, -2)

    def _decomposed(self, params: Params):
        """``(Z, (U, s, Vt), Gamma(Z))``; the last one is reused by the next ``vjp``.

        Solvers evaluate ``signal`` at a trial point and then ``vjp`` at the same (accepted)
        arrays; remembering the SVD of the last factors saves one SVD per iteration. The cache
        holds the factor arrays themselves and is hit only by the very same objects
        (parameters are never modified in place).
        """
        cache = getattr(self, "_cache", None)
        if cache is not None and cache[0] is params[1] and cache[1] is params[2]:
            return cache[2]
        Z = self.products(params)
        U, s, Vt = _thin_svd(Z)
        out = (Z, (U, s, Vt), (U * self.activation.function(s)[..., None, :]) @ Vt)
        self._cache = (params[1], params[2], out)
        return out

    def neurons(self, params: Params) -> np.ndarray:
        """``Gamma(Z_k)`` for every component, shape ``(K, n1, n2)``."""
        return self._decomposed(params)[2]

    def signal(self, params: Params) -> np.ndarray:
        return _mix(params[0], self.neurons(params))

    def vjp(self, params: Params, grad_signal: np.ndarray) -> Params:
        alpha, U, V = params
        Z, svd, neurons = self._decomposed(params)
        G = np.asarray(grad_signal, dtype=float)
        act = self.activation
        g_alpha = np.einsum("kij,ij->k", neurons, G)
        GZ = singular_value_function_vjp(Z, alpha[:, None, None] * G, act.function,
                                         act.derivative, svd=svd)
        return (g_alpha, GZ @ V, GZ.swapaxes(-1, -2) @ U)

    def __getstate__(self):  # the SVD cache is not part of the model
        state = dict(vars(self))
        state.pop("_cache", None)
        return state

    def __repr__(self) -> str:
        return (f"SpectralNetwork(n_rows={self.n_rows}, n_cols={self.n_cols}, "
                f"n_components={self.n_components}, width={self.width}, "
                f"activation={self.activation.name!r})")


# --------------------------------------------------------------------------------------------
# Deep networks: blocks composed into layers
# --------------------------------------------------------------------------------------------
class DeepSpectralNetwork(Parameterization):
    """A depth-``D`` SNN: layers of blocks ``sum_k alpha_k Gamma(X_k)`` (the paper's Fig. 1).

    Layer 0 holds ``K_0`` matrices ``Z_k = U_k V_k^T``; layer ``i`` (``1 <= i <= D``) has
    ``K_i`` blocks, block ``l`` aggregating every output of the previous layer:
    ``Z^(i)_l = sum_k alpha^(i)_{k l} Gamma(Z^(i-1)_k)``, and the last layer has one block,
    ``X = Z^(D)_1``. This is the composition of the paper's Sec. 3 (Fig. 1: "blocks in layer
    i have K = L_(i-1)" inputs) and of the authors' code (``SNN.forward``, layer sizes
    ``in_dim = [2, 2, 2, 2]`` for their synthetic experiments). ``layers=(K,)`` is
    :class:`SpectralNetwork` with ``K`` components.

    Parameters are ``(U, V, alpha_1, ..., alpha_D)``: ``U`` of shape ``(K_0, n1, d)``, ``V``
    of shape ``(K_0, n2, d)``, ``alpha_i`` of shape ``(K_(i-1), K_i)`` with ``K_D = 1``. The
    gradient is back-propagated by hand through each layer's mixing and singular-value
    function (:func:`singular_value_function_vjp`).

    Parameters
    ----------
    n_rows, n_cols : int
    layers : sequence of int, default=(2, 2, 2, 2)
        ``(K_0, ..., K_(D-1))``: inputs of the first layer's blocks, then the number of
        blocks of each hidden layer; ``D = len(layers)``.
    width : int, optional
        Inner dimension ``d`` of ``U_k, V_k``; default ``max(n1, n2)``.
    activation : str, Activation or (callable, callable), default="tanh"
    alpha_init : "uniform" or float, default="uniform"
        Every mixing weight uniform on [0, 1] (the authors' ``torch.rand``) or this constant.
    """

    def __init__(self, n_rows: int, n_cols: int, layers=(2, 2, 2, 2), width: int | None = None,
                 activation="tanh", alpha_init="uniform"):
        layers = tuple(int(k) for k in np.atleast_1d(layers))
        if not layers:
            raise ValueError("layers must hold at least one layer size")
        for k in layers:
            check_positive(k, "layer size", integer=True)
        self.layers = layers
        self._first = SpectralNetwork(n_rows, n_cols, layers[0], width, activation,
                                      alpha_init)
        self.n_rows, self.n_cols, self.width = n_rows, n_cols, self._first.width
        self.activation = self._first.activation
        self.alpha_init = alpha_init
        self.signal_shape = (int(n_rows), int(n_cols))

    @property
    def depth(self) -> int:
        return len(self.layers)

    def _mixing_shapes(self):
        sizes = (*self.layers, 1)
        return list(itertools.pairwise(sizes))

    def init(self, scale: float, rng=None) -> Params:
        """Diagonal factors ``scale (1 + 0.01 eps)`` (:meth:`SpectralNetwork.init`), alphas."""
        rng = check_random_state(rng)
        _, U, V = self._first.init(scale, rng)
        if self.alpha_init == "uniform":
            alphas = [rng.uniform(0.0, 1.0, shape) for shape in self._mixing_shapes()]
        else:
            alphas = [np.full(shape, float(self.alpha_init)) for shape in self._mixing_shapes()]
        return (U, V, *alphas)

    def _forward(self, params: Params):
        """Inner matrices and SVDs of each layer, and the output; cached like SpectralNetwork."""
        cache = getattr(self, "_cache", None)
        if cache is not None and len(cache[0]) == len(params) and all(
                a is b for a, b in zip(cache[0], params, strict=True)):
            return cache[1]
        U, V, *alphas = params
        f = self.activation.function
        Z = U @ V.swapaxes(-1, -2)
        layers = []
        for alpha in alphas:
            P, s, Qt = _thin_svd(Z)
            neurons = (P * f(s)[..., None, :]) @ Qt
            layers.append((Z, (P, s, Qt), neurons))
            Z = _mix(alpha.T, neurons)  # (K_i, n1, n2)
        out = (layers, Z[0])
        self._cache = (tuple(params), out)
        return out

    def signal(self, params: Params) -> np.ndarray:
        return self._forward(params)[1]

    def vjp(self, params: Params, grad_signal: np.ndarray) -> Params:
        U, V, *alphas = params
        layers, _ = self._forward(params)
        act = self.activation
        # the divided differences of every layer at once (they need only singular values)
        P, M, ratio = _pullback_coefficients(
            np.concatenate([svd[1] for _, svd, _ in layers]), act.function, act.derivative,
            _GAP_RTOL, self.n_rows != self.n_cols)
        grad_z = np.asarray(grad_signal, dtype=float)[None]  # dL/dZ of the output layer
        grad_alphas = [None] * len(alphas)
        end = P.shape[0]  # layer i's rows of P, M, ratio end here
        for i in range(len(alphas) - 1, -1, -1):
            _, svd, neurons = layers[i]
            grad_alphas[i] = np.einsum("kab,lab->kl", neurons, grad_z)
            grad_neurons = _mix(alphas[i], grad_z)
            part = slice(end - neurons.shape[0], end)
            end = part.start
            grad_z = _pull_back(svd, grad_neurons,
                                (P[part], M[part], None if ratio is None else ratio[part]))
        return (grad_z @ V, grad_z.swapaxes(-1, -2) @ U, *grad_alphas)

    __getstate__ = SpectralNetwork.__getstate__  # the forward cache is not part of the model

    def __repr__(self) -> str:
        return (f"DeepSpectralNetwork(n_rows={self.n_rows}, n_cols={self.n_cols}, "
                f"layers={self.layers}, width={self.width}, "
                f"activation={self.activation.name!r})")


# --------------------------------------------------------------------------------------------
# The aligned case: diagonals only
# --------------------------------------------------------------------------------------------
class AlignedSpectralNetwork(Parameterization):
    """The SNN in the aligned case: ``s = sum_k alpha_k gamma(u_k o v_k)``, a vector of length r.

    Under Assumptions 1-2 of the paper the factors stay ``U_k = Phi Diag(u_k) G`` and
    ``V_k = Psi Diag(v_k) G``, so ``X = Phi Diag(s) Psi^T`` and only the diagonals evolve. The
    activation acts on the *signed* diagonal entries ``z_k = u_k o v_k`` (as in the paper);
    for odd activations (tanh, linear) this equals the general network.

    Parameters are ``(alpha, u, v)``: ``alpha`` of shape ``(K,)``, ``u, v`` of shape ``(K, r)``.
    The gradient is Theorem 1 of the paper: with ``g = dL/ds``,
    ``dL/du_k = alpha_k gamma'(z_k) o v_k o g``, ``dL/dv_k = alpha_k gamma'(z_k) o u_k o g`` and
    ``dL/dalpha_k = <gamma(z_k), g>``.

    Parameters
    ----------
    rank : int
        Length ``r = min(n1, n2)`` of the diagonal.
    n_components : int, default=2
    activation : str, Activation or (callable, callable), default="tanh"
    alpha_init : "uniform" or float, default="uniform"
    """

    def __init__(self, rank: int, n_components: int = 2, activation="tanh",
                 alpha_init="uniform"):
        check_positive(rank, "rank", integer=True)
        check_positive(n_components, "n_components", integer=True)
        self.rank = int(rank)
        self.n_components = int(n_components)
        self.activation = get_activation(activation)
        if not (alpha_init == "uniform" or isinstance(alpha_init, int | float)):
            raise ValueError(f"alpha_init must be 'uniform' or a number, got {alpha_init!r}")
        self.alpha_init = alpha_init
        self.signal_shape = (self.rank,)

    def init(self, scale: float, rng=None) -> Params:
        """Diagonals ``scale * (1 + 0.01 eps)`` (as :meth:`SpectralNetwork.init`)."""
        check_positive(scale, "init_scale")
        rng = check_random_state(rng)
        K, r = self.n_components, self.rank
        u = scale * (1.0 + 0.01 * rng.standard_normal((K, r)))
        v = scale * (1.0 + 0.01 * rng.standard_normal((K, r)))
        alpha = rng.uniform(0.0, 1.0, K) if self.alpha_init == "uniform" else np.full(
            K, float(self.alpha_init))
        return (alpha, u, v)

    def paper_init(self, rng=None) -> Params:
        """The paper's Sec. 5.1 init: diagonals uniform on [0, 1] sorted decreasing, alpha too."""
        rng = check_random_state(rng)
        K, r = self.n_components, self.rank
        u = -np.sort(-rng.uniform(0.0, 1.0, (K, r)), axis=1)
        v = -np.sort(-rng.uniform(0.0, 1.0, (K, r)), axis=1)
        return (rng.uniform(0.0, 1.0, K), u, v)

    def signal(self, params: Params) -> np.ndarray:
        alpha, u, v = params
        return alpha @ self.activation.function(u * v)

    def vjp(self, params: Params, grad_signal: np.ndarray) -> Params:
        alpha, u, v = params
        z = u * v
        g = np.asarray(grad_signal, dtype=float)
        scaled = alpha[:, None] * self.activation.derivative(z) * g  # the paper's -lambda^(k)
        return (self.activation.function(z) @ g, scaled * v, scaled * u)

    def conserved(self, params: Params) -> np.ndarray:
        """``u_k^2 - v_k^2``, constant along the gradient flow (Appendix B of the paper)."""
        return params[1] ** 2 - params[2] ** 2

    def __repr__(self) -> str:
        return (f"AlignedSpectralNetwork(rank={self.rank}, n_components={self.n_components}, "
                f"activation={self.activation.name!r})")


def warn_if_discontinuous(activation: Activation) -> None:
    """Warn when the general network uses an activation with ``gamma(0) != 0``."""
    if not activation.vanishes_at_zero:
        warnings.warn(
            f"activation {activation.name!r} has gamma(0) != 0: Gamma(Z) is discontinuous at "
            "rank-deficient Z and its gradient is huge near them (e.g. from a small init); "
            "prefer tanh / clipped-relu / linear for general sensing matrices, or the aligned "
            "solver", RuntimeWarning, stacklevel=3)
