//! Activations as types, so that each kernel's inner loop is compiled for one and vectorises.

use super::Real;

/// An activation as a type, so that each inner loop is compiled for one and vectorises.
pub(crate) trait Act<T>: Copy + Send + Sync {
    fn apply(self, y: T) -> T;
    fn derivative(self, y: T) -> T;
}

#[derive(Clone, Copy)]
pub(crate) struct Identity;
#[derive(Clone, Copy)]
pub(crate) struct Relu;
/// The slope for negative inputs.
#[derive(Clone, Copy)]
pub(crate) struct Leaky<T>(pub T);
#[derive(Clone, Copy)]
pub(crate) struct Tanh;

impl<T: Real> Act<T> for Identity {
    #[inline(always)]
    fn apply(self, y: T) -> T {
        y
    }
    #[inline(always)]
    fn derivative(self, _: T) -> T {
        T::ONE
    }
}

impl<T: Real> Act<T> for Relu {
    #[inline(always)]
    fn apply(self, y: T) -> T {
        if y > T::ZERO {
            y
        } else {
            T::ZERO
        }
    }
    #[inline(always)]
    fn derivative(self, y: T) -> T {
        if y > T::ZERO {
            T::ONE
        } else {
            T::ZERO
        }
    }
}

impl<T: Real> Act<T> for Leaky<T> {
    #[inline(always)]
    fn apply(self, y: T) -> T {
        if y > T::ZERO {
            y
        } else {
            y * self.0
        }
    }
    #[inline(always)]
    fn derivative(self, y: T) -> T {
        if y > T::ZERO {
            T::ONE
        } else {
            self.0
        }
    }
}

impl<T: Real> Act<T> for Tanh {
    #[inline(always)]
    fn apply(self, y: T) -> T {
        y.tanh()
    }
    #[inline(always)]
    fn derivative(self, y: T) -> T {
        let t = y.tanh();
        T::ONE - t * t
    }
}

/// Runs `$body` with `$a` bound to the [`Act`] type of `$act`.
macro_rules! with_act {
    ($act:expr, $t:ty, |$a:ident| $body:expr) => {
        match $act {
            $crate::activation::Activation::Identity => {
                let $a = $crate::kernels::act::Identity;
                $body
            }
            $crate::activation::Activation::Relu => {
                let $a = $crate::kernels::act::Relu;
                $body
            }
            $crate::activation::Activation::LeakyRelu(slope) => {
                let $a = $crate::kernels::act::Leaky(<$t>::from_f64(slope));
                $body
            }
            $crate::activation::Activation::Tanh => {
                let $a = $crate::kernels::act::Tanh;
                $body
            }
        }
    };
}
pub(crate) use with_act;
