;; Fused training kernels for the tfjs wasm backend, in WebAssembly SIMD (128-bit, f32x4 / f64x2).
;;
;; The module has no memory of its own: it imports the tfjs wasm backend's memory (its heap) and
;; works on tensors in place, given their byte offsets. It allocates nothing and keeps no state.
;; The math of each function is documented in the TypeScript module that calls it:
;;   group-norm.ts   gn_sums, gn_affine, gn_backward1, gn_backward2, mul
;;   adam.ts         adam
;;   silu.ts         mul, silu_grad
;;   wasm-kernels.ts conv2d, conv2d_filter_grad_tap, pack8, pack8t (conv2d and matMul, fix 10),
;;                   col_sums (Sum over leading axes, fix 8), copy_rows (Concat, fix 12)
;;
;; Layout of the GroupNorm functions: x is [n, s, c] (examples, spatial positions, channels, channels
;; last), c a multiple of 4. Per-(example, channel) coefficients are float32 arrays [n, c]; sums are
;; written as float64 [n, c]. Sums accumulate in float64 (f64x2), so they are as accurate as the
;; JavaScript kernels they replace.
;;
;; Regenerate kernels.generated.ts after editing: pnpm --filter @diffuse/backend build:simd
(module
  (import "env" "memory" (memory 1))

  ;; y[i] <- y[i] * w[i] for i < len.
  (func (export "mul") (param $y i32) (param $w i32) (param $len i32)
    (local $vend i32) (local $end i32)
    (local.set $end (i32.add (local.get $y) (i32.shl (local.get $len) (i32.const 2))))
    (local.set $vend
      (i32.add (local.get $y) (i32.shl (i32.and (local.get $len) (i32.const -4)) (i32.const 2))))
    (block $vdone
      (loop $v
        (br_if $vdone (i32.ge_u (local.get $y) (local.get $vend)))
        (v128.store (local.get $y)
          (f32x4.mul (v128.load (local.get $y)) (v128.load (local.get $w))))
        (local.set $y (i32.add (local.get $y) (i32.const 16)))
        (local.set $w (i32.add (local.get $w) (i32.const 16)))
        (br $v)))
    (block $tdone
      (loop $t
        (br_if $tdone (i32.ge_u (local.get $y) (local.get $end)))
        (f32.store (local.get $y) (f32.mul (f32.load (local.get $y)) (f32.load (local.get $w))))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (local.set $w (i32.add (local.get $w) (i32.const 4)))
        (br $t))))

  ;; SiLU's input gradient given s = sigmoid(x), in the float32 operations and order of tfjs's
  ;; gradients of mul(x, sigmoid(x)): s[i] <- dy s + (dy x) (s (1 - s)), in place, for i < len.
  (func (export "silu_grad") (param $x i32) (param $dy i32) (param $s i32) (param $len i32)
    (local $vend i32) (local $end i32) (local $sv v128) (local $dv v128) (local $sf f32) (local $df f32)
    (local.set $end (i32.add (local.get $s) (i32.shl (local.get $len) (i32.const 2))))
    (local.set $vend
      (i32.add (local.get $s) (i32.shl (i32.and (local.get $len) (i32.const -4)) (i32.const 2))))
    (block $vdone
      (loop $v
        (br_if $vdone (i32.ge_u (local.get $s) (local.get $vend)))
        (local.set $sv (v128.load (local.get $s)))
        (local.set $dv (v128.load (local.get $dy)))
        (v128.store (local.get $s)
          (f32x4.add
            (f32x4.mul (local.get $dv) (local.get $sv))
            (f32x4.mul
              (f32x4.mul (local.get $dv) (v128.load (local.get $x)))
              (f32x4.mul (local.get $sv)
                (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $sv))))))
        (local.set $s (i32.add (local.get $s) (i32.const 16)))
        (local.set $dy (i32.add (local.get $dy) (i32.const 16)))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (br $v)))
    (block $tdone
      (loop $t
        (br_if $tdone (i32.ge_u (local.get $s) (local.get $end)))
        (local.set $sf (f32.load (local.get $s)))
        (local.set $df (f32.load (local.get $dy)))
        (f32.store (local.get $s)
          (f32.add
            (f32.mul (local.get $df) (local.get $sf))
            (f32.mul
              (f32.mul (local.get $df) (f32.load (local.get $x)))
              (f32.mul (local.get $sf) (f32.sub (f32.const 1) (local.get $sf))))))
        (local.set $s (i32.add (local.get $s) (i32.const 4)))
        (local.set $dy (i32.add (local.get $dy) (i32.const 4)))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (br $t))))

  ;; Per example b and channel k: sum[b, k] = sum_p (x[b, p, k] - x[b, 0, k]) and
  ;; sq[b, k] = sum_p (x[b, p, k] - x[b, 0, k])^2, in float64 (the shifted-data sums).
  (func (export "gn_sums")
    (param $x i32) (param $n i32) (param $s i32) (param $c i32) (param $sum i32) (param $sq i32)
    (local $row i32) (local $base i32) (local $end i32) (local $k i32) (local $p i32) (local $at i32)
    (local $K v128) (local $v v128) (local $lo v128) (local $hi v128)
    (local $s0 v128) (local $s1 v128) (local $q0 v128) (local $q1 v128)
    (local.set $row (i32.shl (local.get $c) (i32.const 2)))
    (local.set $base (local.get $x))
    (block $bdone
      (loop $b
        (br_if $bdone (i32.eqz (local.get $n)))
        (local.set $end (i32.add (local.get $base) (i32.mul (local.get $s) (local.get $row))))
        (local.set $k (i32.const 0))
        (block $kdone
          (loop $kl
            (br_if $kdone (i32.ge_u (local.get $k) (local.get $row)))
            (local.set $p (i32.add (local.get $base) (local.get $k)))
            (local.set $K (v128.load (local.get $p)))
            (local.set $s0 (v128.const i64x2 0 0))
            (local.set $s1 (v128.const i64x2 0 0))
            (local.set $q0 (v128.const i64x2 0 0))
            (local.set $q1 (v128.const i64x2 0 0))
            (block $pdone
              (loop $pl
                (br_if $pdone (i32.ge_u (local.get $p) (local.get $end)))
                (local.set $v (f32x4.sub (v128.load (local.get $p)) (local.get $K)))
                (local.set $lo (f64x2.promote_low_f32x4 (local.get $v)))
                (local.set $hi (f64x2.promote_low_f32x4
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))
                (local.set $s0 (f64x2.add (local.get $s0) (local.get $lo)))
                (local.set $s1 (f64x2.add (local.get $s1) (local.get $hi)))
                (local.set $q0 (f64x2.add (local.get $q0) (f64x2.mul (local.get $lo) (local.get $lo))))
                (local.set $q1 (f64x2.add (local.get $q1) (f64x2.mul (local.get $hi) (local.get $hi))))
                (local.set $p (i32.add (local.get $p) (local.get $row)))
                (br $pl)))
            ;; float64 outputs: byte offset 2 * (float32 byte offset k)
            (local.set $at (i32.shl (local.get $k) (i32.const 1)))
            (v128.store (i32.add (local.get $sum) (local.get $at)) (local.get $s0))
            (v128.store offset=16 (i32.add (local.get $sum) (local.get $at)) (local.get $s1))
            (v128.store (i32.add (local.get $sq) (local.get $at)) (local.get $q0))
            (v128.store offset=16 (i32.add (local.get $sq) (local.get $at)) (local.get $q1))
            (local.set $k (i32.add (local.get $k) (i32.const 16)))
            (br $kl)))
        (local.set $base (local.get $end))
        (local.set $sum (i32.add (local.get $sum) (i32.shl (local.get $row) (i32.const 1))))
        (local.set $sq (i32.add (local.get $sq) (i32.shl (local.get $row) (i32.const 1))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $b))))

  ;; z[b, p, k] = ((x[b, p, k] - mhi[b, k]) - mlo[b, k]) * scale[b, k] + shift[b, k], the mean given as
  ;; mhi + mlo (mhi = float32(mean), mlo = float32(mean - mhi)): x - mhi is exact when x is near the
  ;; mean, so a large mean does not cost the centred value its precision.
  (func (export "gn_affine")
    (param $x i32) (param $z i32) (param $n i32) (param $s i32) (param $c i32)
    (param $mean i32) (param $mlo i32) (param $scale i32) (param $shift i32)
    (local $row i32) (local $end i32) (local $k i32) (local $j i32)
    (local.set $row (i32.shl (local.get $c) (i32.const 2)))
    (block $bdone
      (loop $b
        (br_if $bdone (i32.eqz (local.get $n)))
        (local.set $j (local.get $s))
        (block $pdone
          (loop $pl
            (br_if $pdone (i32.eqz (local.get $j)))
            (local.set $k (i32.const 0))
            (block $kdone
              (loop $kl
                (br_if $kdone (i32.ge_u (local.get $k) (local.get $row)))
                (v128.store (i32.add (local.get $z) (local.get $k))
                  (f32x4.add
                    (f32x4.mul
                      (f32x4.sub
                        (f32x4.sub
                          (v128.load (i32.add (local.get $x) (local.get $k)))
                          (v128.load (i32.add (local.get $mean) (local.get $k))))
                        (v128.load (i32.add (local.get $mlo) (local.get $k))))
                      (v128.load (i32.add (local.get $scale) (local.get $k))))
                    (v128.load (i32.add (local.get $shift) (local.get $k)))))
                (local.set $k (i32.add (local.get $k) (i32.const 16)))
                (br $kl)))
            (local.set $x (i32.add (local.get $x) (local.get $row)))
            (local.set $z (i32.add (local.get $z) (local.get $row)))
            (local.set $j (i32.sub (local.get $j) (i32.const 1)))
            (br $pl)))
        (local.set $mean (i32.add (local.get $mean) (local.get $row)))
        (local.set $mlo (i32.add (local.get $mlo) (local.get $row)))
        (local.set $scale (i32.add (local.get $scale) (local.get $row)))
        (local.set $shift (i32.add (local.get $shift) (local.get $row)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $b))))

  ;; First backward pass. With xhat = ((x - mhi[b, k]) - mlo[b, k]) rstd[b, k] and z = gamma[b, k] xhat + beta[b, k]:
  ;;   dz = dy                                   (silu = 0)
  ;;   dz = dy sig (1 + z (1 - sig))             (silu = 1; sig = sigmoid(z), given)
  ;; writes dz into dx and s1[b, k] = sum_p dz, s2[b, k] = sum_p dz xhat in float64.
  (func (export "gn_backward1")
    (param $x i32) (param $dy i32) (param $sig i32) (param $dx i32)
    (param $n i32) (param $s i32) (param $c i32) (param $silu i32)
    (param $mean i32) (param $mlo i32) (param $rstd i32) (param $gamma i32) (param $beta i32)
    (param $s1 i32) (param $s2 i32)
    (local $row i32) (local $size i32) (local $k i32) (local $p i32) (local $at i32)
    (local $M v128) (local $L v128) (local $R v128) (local $G v128) (local $B v128) (local $one v128)
    (local $xh v128) (local $z v128) (local $sg v128) (local $dz v128) (local $prod v128)
    (local $a0 v128) (local $a1 v128) (local $b0 v128) (local $b1 v128)
    (local.set $row (i32.shl (local.get $c) (i32.const 2)))
    (local.set $size (i32.mul (local.get $s) (local.get $row)))
    (local.set $one (f32x4.splat (f32.const 1)))
    (block $bdone
      (loop $b
        (br_if $bdone (i32.eqz (local.get $n)))
        (local.set $k (i32.const 0))
        (block $kdone
          (loop $kl
            (br_if $kdone (i32.ge_u (local.get $k) (local.get $row)))
            (local.set $M (v128.load (i32.add (local.get $mean) (local.get $k))))
            (local.set $L (v128.load (i32.add (local.get $mlo) (local.get $k))))
            (local.set $R (v128.load (i32.add (local.get $rstd) (local.get $k))))
            (local.set $G (v128.load (i32.add (local.get $gamma) (local.get $k))))
            (local.set $B (v128.load (i32.add (local.get $beta) (local.get $k))))
            (local.set $a0 (v128.const i64x2 0 0))
            (local.set $a1 (v128.const i64x2 0 0))
            (local.set $b0 (v128.const i64x2 0 0))
            (local.set $b1 (v128.const i64x2 0 0))
            (local.set $p (local.get $k))
            (block $pdone
              (loop $pl
                (br_if $pdone (i32.ge_u (local.get $p) (local.get $size)))
                (local.set $xh
                  (f32x4.mul
                    (f32x4.sub
                      (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $p))) (local.get $M))
                      (local.get $L))
                    (local.get $R)))
                (local.set $dz (v128.load (i32.add (local.get $dy) (local.get $p))))
                (if (local.get $silu)
                  (then
                    (local.set $z
                      (f32x4.add (f32x4.mul (local.get $xh) (local.get $G)) (local.get $B)))
                    (local.set $sg (v128.load (i32.add (local.get $sig) (local.get $p))))
                    (local.set $dz
                      (f32x4.mul
                        (f32x4.mul (local.get $dz) (local.get $sg))
                        (f32x4.add (local.get $one)
                          (f32x4.mul (local.get $z) (f32x4.sub (local.get $one) (local.get $sg))))))))
                (v128.store (i32.add (local.get $dx) (local.get $p)) (local.get $dz))
                (local.set $prod (f32x4.mul (local.get $dz) (local.get $xh)))
                (local.set $a0 (f64x2.add (local.get $a0) (f64x2.promote_low_f32x4 (local.get $dz))))
                (local.set $a1 (f64x2.add (local.get $a1) (f64x2.promote_low_f32x4
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $dz) (local.get $dz)))))
                (local.set $b0 (f64x2.add (local.get $b0) (f64x2.promote_low_f32x4 (local.get $prod))))
                (local.set $b1 (f64x2.add (local.get $b1) (f64x2.promote_low_f32x4
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $prod) (local.get $prod)))))
                (local.set $p (i32.add (local.get $p) (local.get $row)))
                (br $pl)))
            (local.set $at (i32.shl (local.get $k) (i32.const 1)))
            (v128.store (i32.add (local.get $s1) (local.get $at)) (local.get $a0))
            (v128.store offset=16 (i32.add (local.get $s1) (local.get $at)) (local.get $a1))
            (v128.store (i32.add (local.get $s2) (local.get $at)) (local.get $b0))
            (v128.store offset=16 (i32.add (local.get $s2) (local.get $at)) (local.get $b1))
            (local.set $k (i32.add (local.get $k) (i32.const 16)))
            (br $kl)))
        (local.set $x (i32.add (local.get $x) (local.get $size)))
        (local.set $dy (i32.add (local.get $dy) (local.get $size)))
        (local.set $sig (i32.add (local.get $sig) (local.get $size)))
        (local.set $dx (i32.add (local.get $dx) (local.get $size)))
        (local.set $mean (i32.add (local.get $mean) (local.get $row)))
        (local.set $mlo (i32.add (local.get $mlo) (local.get $row)))
        (local.set $rstd (i32.add (local.get $rstd) (local.get $row)))
        (local.set $gamma (i32.add (local.get $gamma) (local.get $row)))
        (local.set $beta (i32.add (local.get $beta) (local.get $row)))
        (local.set $s1 (i32.add (local.get $s1) (i32.shl (local.get $row) (i32.const 1))))
        (local.set $s2 (i32.add (local.get $s2) (i32.shl (local.get $row) (i32.const 1))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $b))))

  ;; Second backward pass, in place on dx (which holds dz):
  ;;   dx[b, p, k] = gr[b, k] dz - k1[b, k] - ((x[b, p, k] - mhi[b, k]) - mlo[b, k]) k2[b, k].
  (func (export "gn_backward2")
    (param $x i32) (param $dx i32) (param $n i32) (param $s i32) (param $c i32)
    (param $gr i32) (param $k1 i32) (param $mean i32) (param $mlo i32) (param $k2 i32)
    (local $row i32) (local $k i32) (local $j i32)
    (local.set $row (i32.shl (local.get $c) (i32.const 2)))
    (block $bdone
      (loop $b
        (br_if $bdone (i32.eqz (local.get $n)))
        (local.set $j (local.get $s))
        (block $pdone
          (loop $pl
            (br_if $pdone (i32.eqz (local.get $j)))
            (local.set $k (i32.const 0))
            (block $kdone
              (loop $kl
                (br_if $kdone (i32.ge_u (local.get $k) (local.get $row)))
                (v128.store (i32.add (local.get $dx) (local.get $k))
                  (f32x4.sub
                    (f32x4.sub
                      (f32x4.mul
                        (v128.load (i32.add (local.get $gr) (local.get $k)))
                        (v128.load (i32.add (local.get $dx) (local.get $k))))
                      (v128.load (i32.add (local.get $k1) (local.get $k))))
                    (f32x4.mul
                      (f32x4.sub
                        (f32x4.sub
                          (v128.load (i32.add (local.get $x) (local.get $k)))
                          (v128.load (i32.add (local.get $mean) (local.get $k))))
                        (v128.load (i32.add (local.get $mlo) (local.get $k))))
                      (v128.load (i32.add (local.get $k2) (local.get $k))))))
                (local.set $k (i32.add (local.get $k) (i32.const 16)))
                (br $kl)))
            (local.set $x (i32.add (local.get $x) (local.get $row)))
            (local.set $dx (i32.add (local.get $dx) (local.get $row)))
            (local.set $j (i32.sub (local.get $j) (i32.const 1)))
            (br $pl)))
        (local.set $gr (i32.add (local.get $gr) (local.get $row)))
        (local.set $k1 (i32.add (local.get $k1) (local.get $row)))
        (local.set $mean (i32.add (local.get $mean) (local.get $row)))
        (local.set $mlo (i32.add (local.get $mlo) (local.get $row)))
        (local.set $k2 (i32.add (local.get $k2) (local.get $row)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $b))))

  ;; One Adam(W) step over len values, in float32, in the order of the composed tfjs ops:
  ;;   g = g0 gs;  m' = m b1 + g (1 - b1);  v' = v b2 + g^2 (1 - b2)
  ;;   u = (m' / c1) / (sqrt(v' / c2) + eps) (+ p wd when wd > 0);  p' = p - u lr
  ;; om1 = 1 - b1 and om2 = 1 - b2 are given, rounded to float32 as tfjs rounds scalars.
  (func (export "adam")
    (param $p i32) (param $m i32) (param $v i32) (param $g i32)
    (param $po i32) (param $mo i32) (param $vo i32) (param $len i32)
    (param $gs f32) (param $b1 f32) (param $om1 f32) (param $b2 f32) (param $om2 f32)
    (param $c1 f32) (param $c2 f32) (param $eps f32) (param $wd f32) (param $lr f32)
    (local $i i32) (local $vlen i32)
    (local $GS v128) (local $B1 v128) (local $OM1 v128) (local $B2 v128) (local $OM2 v128)
    (local $C1 v128) (local $C2 v128) (local $EPS v128) (local $WD v128) (local $LR v128)
    (local $gv v128) (local $mv v128) (local $vv v128) (local $pv v128) (local $u v128)
    (local $gf f32) (local $mf f32) (local $vf f32) (local $pf f32) (local $uf f32)
    (local.set $GS (f32x4.splat (local.get $gs)))
    (local.set $B1 (f32x4.splat (local.get $b1)))
    (local.set $OM1 (f32x4.splat (local.get $om1)))
    (local.set $B2 (f32x4.splat (local.get $b2)))
    (local.set $OM2 (f32x4.splat (local.get $om2)))
    (local.set $C1 (f32x4.splat (local.get $c1)))
    (local.set $C2 (f32x4.splat (local.get $c2)))
    (local.set $EPS (f32x4.splat (local.get $eps)))
    (local.set $WD (f32x4.splat (local.get $wd)))
    (local.set $LR (f32x4.splat (local.get $lr)))
    (local.set $vlen (i32.shl (i32.and (local.get $len) (i32.const -4)) (i32.const 2)))
    (local.set $i (i32.const 0))
    (block $vdone
      (loop $vl
        (br_if $vdone (i32.ge_u (local.get $i) (local.get $vlen)))
        (local.set $gv (f32x4.mul (v128.load (i32.add (local.get $g) (local.get $i))) (local.get $GS)))
        (local.set $mv
          (f32x4.add
            (f32x4.mul (v128.load (i32.add (local.get $m) (local.get $i))) (local.get $B1))
            (f32x4.mul (local.get $gv) (local.get $OM1))))
        (local.set $vv
          (f32x4.add
            (f32x4.mul (v128.load (i32.add (local.get $v) (local.get $i))) (local.get $B2))
            (f32x4.mul (f32x4.mul (local.get $gv) (local.get $gv)) (local.get $OM2))))
        (local.set $pv (v128.load (i32.add (local.get $p) (local.get $i))))
        (local.set $u
          (f32x4.div
            (f32x4.div (local.get $mv) (local.get $C1))
            (f32x4.add (f32x4.sqrt (f32x4.div (local.get $vv) (local.get $C2))) (local.get $EPS))))
        (if (f32.gt (local.get $wd) (f32.const 0))
          (then (local.set $u (f32x4.add (local.get $u) (f32x4.mul (local.get $pv) (local.get $WD))))))
        (v128.store (i32.add (local.get $mo) (local.get $i)) (local.get $mv))
        (v128.store (i32.add (local.get $vo) (local.get $i)) (local.get $vv))
        (v128.store (i32.add (local.get $po) (local.get $i))
          (f32x4.sub (local.get $pv) (f32x4.mul (local.get $u) (local.get $LR))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $vl)))
    (local.set $vlen (i32.shl (local.get $len) (i32.const 2)))
    (block $tdone
      (loop $tl
        (br_if $tdone (i32.ge_u (local.get $i) (local.get $vlen)))
        (local.set $gf (f32.mul (f32.load (i32.add (local.get $g) (local.get $i))) (local.get $gs)))
        (local.set $mf
          (f32.add
            (f32.mul (f32.load (i32.add (local.get $m) (local.get $i))) (local.get $b1))
            (f32.mul (local.get $gf) (local.get $om1))))
        (local.set $vf
          (f32.add
            (f32.mul (f32.load (i32.add (local.get $v) (local.get $i))) (local.get $b2))
            (f32.mul (f32.mul (local.get $gf) (local.get $gf)) (local.get $om2))))
        (local.set $pf (f32.load (i32.add (local.get $p) (local.get $i))))
        (local.set $uf
          (f32.div
            (f32.div (local.get $mf) (local.get $c1))
            (f32.add (f32.sqrt (f32.div (local.get $vf) (local.get $c2))) (local.get $eps))))
        (if (f32.gt (local.get $wd) (f32.const 0))
          (then (local.set $uf (f32.add (local.get $uf) (f32.mul (local.get $pf) (local.get $wd))))))
        (f32.store (i32.add (local.get $mo) (local.get $i)) (local.get $mf))
        (f32.store (i32.add (local.get $vo) (local.get $i)) (local.get $vf))
        (f32.store (i32.add (local.get $po) (local.get $i))
          (f32.sub (local.get $pf) (f32.mul (local.get $uf) (local.get $lr))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $tl))))

  ;; The filter gradient of a stride-1 conv2d for one filter tap (kh, kw), channels last:
  ;;   dw[i, o] = sum_(b, r, s) xp[b, r + kh, s + kw, i] dy[b, r, s, o]
  ;; xp is the padded input at the tap's offset (xsn, xsh: its example and row strides in bytes),
  ;; dy [nb, oh, ow, co] contiguous, dw [ci, co] (overwritten, or added to when accumulate is 1).
  ;; ci a multiple of 4, co of 8.
  ;; Blocks of 4 x 8 outputs accumulate in registers over one output row (ow values) at a time.
  (func (export "conv2d_filter_grad_tap")
    (param $xp i32) (param $dy i32) (param $dw i32) (param $nb i32) (param $oh i32) (param $ow i32)
    (param $ci i32) (param $co i32) (param $xsn i32) (param $xsh i32) (param $accumulate i32)
    (local $cirow i32) (local $corow i32) (local $b i32) (local $i i32) (local $arow i32)
    (local $brow i32) (local $m i32) (local $n i32) (local $pa i32) (local $pb i32) (local $pc i32)
    (local $end i32)
    (local $a v128) (local $b0 v128) (local $b1 v128)
    (local $c0l v128) (local $c0h v128) (local $c1l v128) (local $c1h v128)
    (local $c2l v128) (local $c2h v128) (local $c3l v128) (local $c3h v128)
    (local.set $cirow (i32.shl (local.get $ci) (i32.const 2)))
    (local.set $corow (i32.shl (local.get $co) (i32.const 2)))
    (if (i32.eqz (local.get $accumulate))
      (then (memory.fill (local.get $dw) (i32.const 0) (i32.mul (local.get $ci) (local.get $corow)))))
    (local.set $brow (local.get $dy))
    (local.set $b (i32.const 0))
    (block $bdone
      (loop $bl
        (br_if $bdone (i32.ge_u (local.get $b) (local.get $nb)))
        (local.set $i (i32.const 0))
        (block $idone
          (loop $il
            (br_if $idone (i32.ge_u (local.get $i) (local.get $oh)))
            (local.set $arow (i32.add (local.get $xp)
              (i32.add (i32.mul (local.get $b) (local.get $xsn)) (i32.mul (local.get $i) (local.get $xsh)))))
            (local.set $m (i32.const 0))
            (block $mdone
              (loop $ml
                (br_if $mdone (i32.ge_u (local.get $m) (local.get $cirow)))
                (local.set $n (i32.const 0))
                (block $ndone
                  (loop $nl
                    (br_if $ndone (i32.ge_u (local.get $n) (local.get $corow)))
                    ;; pc = dw + (m / 4) rows of co + n
                    (local.set $pc (i32.add (local.get $dw)
                      (i32.add (i32.mul (i32.shr_u (local.get $m) (i32.const 2)) (local.get $corow)) (local.get $n))))
            (local.set $c0l (v128.load offset=0 (local.get $pc)))
            (local.set $c0h (v128.load offset=16 (local.get $pc)))
            (local.set $c1l (v128.load offset=0 (i32.add (local.get $pc) (i32.mul (local.get $corow) (i32.const 1)))))
            (local.set $c1h (v128.load offset=16 (i32.add (local.get $pc) (i32.mul (local.get $corow) (i32.const 1)))))
            (local.set $c2l (v128.load offset=0 (i32.add (local.get $pc) (i32.mul (local.get $corow) (i32.const 2)))))
            (local.set $c2h (v128.load offset=16 (i32.add (local.get $pc) (i32.mul (local.get $corow) (i32.const 2)))))
            (local.set $c3l (v128.load offset=0 (i32.add (local.get $pc) (i32.mul (local.get $corow) (i32.const 3)))))
            (local.set $c3h (v128.load offset=16 (i32.add (local.get $pc) (i32.mul (local.get $corow) (i32.const 3)))))
                    (local.set $pa (i32.add (local.get $arow) (local.get $m)))
                    (local.set $pb (i32.add (local.get $brow) (local.get $n)))
                    (local.set $end (i32.add (local.get $pb) (i32.mul (local.get $ow) (local.get $corow))))
                    (block $jdone
                      (loop $jl
                        (br_if $jdone (i32.ge_u (local.get $pb) (local.get $end)))
                        (local.set $b0 (v128.load (local.get $pb)))
                        (local.set $b1 (v128.load offset=16 (local.get $pb)))
                (local.set $a (v128.load32_splat offset=0 (local.get $pa)))
                (local.set $c0l (f32x4.add (local.get $c0l) (f32x4.mul (local.get $a) (local.get $b0))))
                (local.set $c0h (f32x4.add (local.get $c0h) (f32x4.mul (local.get $a) (local.get $b1))))
                (local.set $a (v128.load32_splat offset=4 (local.get $pa)))
                (local.set $c1l (f32x4.add (local.get $c1l) (f32x4.mul (local.get $a) (local.get $b0))))
                (local.set $c1h (f32x4.add (local.get $c1h) (f32x4.mul (local.get $a) (local.get $b1))))
                (local.set $a (v128.load32_splat offset=8 (local.get $pa)))
                (local.set $c2l (f32x4.add (local.get $c2l) (f32x4.mul (local.get $a) (local.get $b0))))
                (local.set $c2h (f32x4.add (local.get $c2h) (f32x4.mul (local.get $a) (local.get $b1))))
                (local.set $a (v128.load32_splat offset=12 (local.get $pa)))
                (local.set $c3l (f32x4.add (local.get $c3l) (f32x4.mul (local.get $a) (local.get $b0))))
                (local.set $c3h (f32x4.add (local.get $c3h) (f32x4.mul (local.get $a) (local.get $b1))))
                        (local.set $pa (i32.add (local.get $pa) (local.get $cirow)))
                        (local.set $pb (i32.add (local.get $pb) (local.get $corow)))
                        (br $jl)))
            (v128.store offset=0 (local.get $pc) (local.get $c0l))
            (v128.store offset=16 (local.get $pc) (local.get $c0h))
            (v128.store offset=0 (i32.add (local.get $pc) (i32.mul (local.get $corow) (i32.const 1))) (local.get $c1l))
            (v128.store offset=16 (i32.add (local.get $pc) (i32.mul (local.get $corow) (i32.const 1))) (local.get $c1h))
            (v128.store offset=0 (i32.add (local.get $pc) (i32.mul (local.get $corow) (i32.const 2))) (local.get $c2l))
            (v128.store offset=16 (i32.add (local.get $pc) (i32.mul (local.get $corow) (i32.const 2))) (local.get $c2h))
            (v128.store offset=0 (i32.add (local.get $pc) (i32.mul (local.get $corow) (i32.const 3))) (local.get $c3l))
            (v128.store offset=16 (i32.add (local.get $pc) (i32.mul (local.get $corow) (i32.const 3))) (local.get $c3h))
                    (local.set $n (i32.add (local.get $n) (i32.const 32)))
                    (br $nl)))
                (local.set $m (i32.add (local.get $m) (i32.const 16)))
                (br $ml)))
            (local.set $brow (i32.add (local.get $brow) (i32.mul (local.get $ow) (local.get $corow))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $il)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $bl))))

  ;; A stride-1 conv2d, channels last: y[b, r, s, o] = sum_(i, j, c) xp[b, r + i, s + j, c] w[i, j, c, o]
  ;; xp is the padded input [nb, hp, wp, ci] (xsn, xsh: example and row strides in bytes), w the
  ;; filter [kh, kw, ci, co] packed by pack8 (blocks of 8 output channels, each [kh kw ci, 8]
  ;; contiguous), y [nb, oh, ow, co] (overwritten). co >= 8, nb oh ow >= 4. When co is not a multiple of
  ;; 8 the last block of channels is shifted back to end at channel co (as pack8 packs it).
  ;; Blocks of 4 output pixels x 8 channels accumulate in registers over every tap and input channel;
  ;; the last block of pixels is shifted back to end at the last pixel (recomputing a few: same values).
  (func (export "conv2d")
    (param $xp i32) (param $w i32) (param $y i32) (param $nb i32) (param $oh i32) (param $ow i32)
    (param $ci i32) (param $co i32) (param $kh i32) (param $kw i32) (param $xsn i32) (param $xsh i32)
    (local $cirow i32) (local $corow i32) (local $plane i32) (local $npix i32) (local $o i32)
    (local $q i32) (local $t i32) (local $ti i32) (local $tj i32) (local $d i32) (local $pw i32)
    (local $i i32) (local $py i32) (local $ob i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32)
    (local $a v128) (local $w0 v128) (local $w1 v128)
    (local $c0l v128) (local $c0h v128) (local $c1l v128) (local $c1h v128)
    (local $c2l v128) (local $c2h v128) (local $c3l v128) (local $c3h v128)
    (local.set $cirow (i32.shl (local.get $ci) (i32.const 2)))
    (local.set $corow (i32.shl (local.get $co) (i32.const 2)))
    (local.set $plane (i32.mul (local.get $oh) (local.get $ow)))
    (local.set $npix (i32.mul (local.get $nb) (local.get $plane)))
    (local.set $o (i32.const 0))
    (block $odone
      (loop $ol
        (br_if $odone (i32.ge_u (local.get $o) (local.get $corow)))
        ;; the last block ends at the last channel (overlapping the one before when co % 8 > 0)
        (local.set $ob (select (local.get $o) (i32.sub (local.get $corow) (i32.const 32))
          (i32.le_u (i32.add (local.get $o) (i32.const 32)) (local.get $corow))))
        (local.set $q (i32.const 0))
        (block $qdone
          (loop $ql
            (br_if $qdone (i32.ge_u (local.get $q) (local.get $npix)))
            (if (i32.gt_u (i32.add (local.get $q) (i32.const 4)) (local.get $npix))
              (then (local.set $q (i32.sub (local.get $npix) (i32.const 4)))))
            (local.set $t (i32.add (local.get $q) (i32.const 0)))
            (local.set $p0 (i32.add (local.get $xp)
              (i32.add
                (i32.add
                  (i32.mul (i32.div_u (local.get $t) (local.get $plane)) (local.get $xsn))
                  (i32.mul (i32.div_u (i32.rem_u (local.get $t) (local.get $plane)) (local.get $ow)) (local.get $xsh)))
                (i32.mul (i32.rem_u (local.get $t) (local.get $ow)) (local.get $cirow)))))
            (local.set $t (i32.add (local.get $q) (i32.const 1)))
            (local.set $p1 (i32.add (local.get $xp)
              (i32.add
                (i32.add
                  (i32.mul (i32.div_u (local.get $t) (local.get $plane)) (local.get $xsn))
                  (i32.mul (i32.div_u (i32.rem_u (local.get $t) (local.get $plane)) (local.get $ow)) (local.get $xsh)))
                (i32.mul (i32.rem_u (local.get $t) (local.get $ow)) (local.get $cirow)))))
            (local.set $t (i32.add (local.get $q) (i32.const 2)))
            (local.set $p2 (i32.add (local.get $xp)
              (i32.add
                (i32.add
                  (i32.mul (i32.div_u (local.get $t) (local.get $plane)) (local.get $xsn))
                  (i32.mul (i32.div_u (i32.rem_u (local.get $t) (local.get $plane)) (local.get $ow)) (local.get $xsh)))
                (i32.mul (i32.rem_u (local.get $t) (local.get $ow)) (local.get $cirow)))))
            (local.set $t (i32.add (local.get $q) (i32.const 3)))
            (local.set $p3 (i32.add (local.get $xp)
              (i32.add
                (i32.add
                  (i32.mul (i32.div_u (local.get $t) (local.get $plane)) (local.get $xsn))
                  (i32.mul (i32.div_u (i32.rem_u (local.get $t) (local.get $plane)) (local.get $ow)) (local.get $xsh)))
                (i32.mul (i32.rem_u (local.get $t) (local.get $ow)) (local.get $cirow)))))
            (local.set $c0l (v128.const i64x2 0 0))
            (local.set $c0h (v128.const i64x2 0 0))
            (local.set $c1l (v128.const i64x2 0 0))
            (local.set $c1h (v128.const i64x2 0 0))
            (local.set $c2l (v128.const i64x2 0 0))
            (local.set $c2h (v128.const i64x2 0 0))
            (local.set $c3l (v128.const i64x2 0 0))
            (local.set $c3h (v128.const i64x2 0 0))
            ;; this channel block's filter: (o / 32) blocks of kh kw ci rows of 8 values
            (local.set $pw (i32.add (local.get $w)
              (i32.mul (local.get $o) (i32.mul (i32.mul (local.get $kh) (local.get $kw)) (local.get $ci)))))
            (local.set $ti (i32.const 0))
            (block $tidone
              (loop $til
                (br_if $tidone (i32.ge_u (local.get $ti) (local.get $kh)))
                (local.set $tj (i32.const 0))
                (block $tjdone
                  (loop $tjl
                    (br_if $tjdone (i32.ge_u (local.get $tj) (local.get $kw)))
                    (local.set $d (i32.add (i32.mul (local.get $ti) (local.get $xsh))
                      (i32.mul (local.get $tj) (local.get $cirow))))
                    (local.set $p0 (i32.add (local.get $p0) (local.get $d)))
                    (local.set $p1 (i32.add (local.get $p1) (local.get $d)))
                    (local.set $p2 (i32.add (local.get $p2) (local.get $d)))
                    (local.set $p3 (i32.add (local.get $p3) (local.get $d)))
                    (local.set $i (i32.const 0))
                    (block $idone
                      (loop $il
                        (br_if $idone (i32.ge_u (local.get $i) (local.get $cirow)))
                        (local.set $w0 (v128.load (local.get $pw)))
                        (local.set $w1 (v128.load offset=16 (local.get $pw)))
                    (local.set $a (v128.load32_splat (i32.add (local.get $p0) (local.get $i))))
                    (local.set $c0l (f32x4.add (local.get $c0l) (f32x4.mul (local.get $a) (local.get $w0))))
                    (local.set $c0h (f32x4.add (local.get $c0h) (f32x4.mul (local.get $a) (local.get $w1))))
                    (local.set $a (v128.load32_splat (i32.add (local.get $p1) (local.get $i))))
                    (local.set $c1l (f32x4.add (local.get $c1l) (f32x4.mul (local.get $a) (local.get $w0))))
                    (local.set $c1h (f32x4.add (local.get $c1h) (f32x4.mul (local.get $a) (local.get $w1))))
                    (local.set $a (v128.load32_splat (i32.add (local.get $p2) (local.get $i))))
                    (local.set $c2l (f32x4.add (local.get $c2l) (f32x4.mul (local.get $a) (local.get $w0))))
                    (local.set $c2h (f32x4.add (local.get $c2h) (f32x4.mul (local.get $a) (local.get $w1))))
                    (local.set $a (v128.load32_splat (i32.add (local.get $p3) (local.get $i))))
                    (local.set $c3l (f32x4.add (local.get $c3l) (f32x4.mul (local.get $a) (local.get $w0))))
                    (local.set $c3h (f32x4.add (local.get $c3h) (f32x4.mul (local.get $a) (local.get $w1))))
                        (local.set $pw (i32.add (local.get $pw) (i32.const 32)))
                        (local.set $i (i32.add (local.get $i) (i32.const 4)))
                        (br $il)))
                    (local.set $p0 (i32.sub (local.get $p0) (local.get $d)))
                    (local.set $p1 (i32.sub (local.get $p1) (local.get $d)))
                    (local.set $p2 (i32.sub (local.get $p2) (local.get $d)))
                    (local.set $p3 (i32.sub (local.get $p3) (local.get $d)))
                    (local.set $tj (i32.add (local.get $tj) (i32.const 1)))
                    (br $tjl)))
                (local.set $ti (i32.add (local.get $ti) (i32.const 1)))
                (br $til)))
            (local.set $py (i32.add (local.get $y) (i32.add (i32.mul (i32.add (local.get $q) (i32.const 0)) (local.get $corow)) (local.get $ob))))
            (v128.store (local.get $py) (local.get $c0l))
            (v128.store offset=16 (local.get $py) (local.get $c0h))
            (local.set $py (i32.add (local.get $y) (i32.add (i32.mul (i32.add (local.get $q) (i32.const 1)) (local.get $corow)) (local.get $ob))))
            (v128.store (local.get $py) (local.get $c1l))
            (v128.store offset=16 (local.get $py) (local.get $c1h))
            (local.set $py (i32.add (local.get $y) (i32.add (i32.mul (i32.add (local.get $q) (i32.const 2)) (local.get $corow)) (local.get $ob))))
            (v128.store (local.get $py) (local.get $c2l))
            (v128.store offset=16 (local.get $py) (local.get $c2h))
            (local.set $py (i32.add (local.get $y) (i32.add (i32.mul (i32.add (local.get $q) (i32.const 3)) (local.get $corow)) (local.get $ob))))
            (v128.store (local.get $py) (local.get $c3l))
            (v128.store offset=16 (local.get $py) (local.get $c3h))
            (local.set $q (i32.add (local.get $q) (i32.const 4)))
            (br $ql)))
        (local.set $o (i32.add (local.get $o) (i32.const 32)))
        (br $ol))))

  ;; Column sums of x [outer, inner] in float64, added into acc [inner] (float64, 8-byte aligned):
  ;; acc[j] += sum_i x[i, j], accumulated per block of 64 rows (the block's sum, in row order, then
  ;; added to acc[j]), 4 columns at a time in f64x2 pairs; columns past a multiple of 4 one by one.
  (func (export "col_sums") (param $x i32) (param $acc i32) (param $outer i32) (param $inner i32)
    (local $rowb i32) (local $wide i32) (local $i0 i32) (local $i1 i32) (local $j i32)
    (local $p i32) (local $end i32) (local $v v128) (local $s01 v128) (local $s23 v128)
    (local $pa i32) (local $sf f64)
    (local.set $rowb (i32.shl (local.get $inner) (i32.const 2)))
    (local.set $wide (i32.shl (i32.and (local.get $inner) (i32.const -4)) (i32.const 2)))
    (local.set $i0 (i32.const 0))
    (block $bdone
      (loop $bl
        (br_if $bdone (i32.ge_u (local.get $i0) (local.get $outer)))
        (local.set $i1 (select (local.get $outer) (i32.add (local.get $i0) (i32.const 64))
          (i32.lt_u (local.get $outer) (i32.add (local.get $i0) (i32.const 64)))))
        (local.set $end (i32.add (local.get $x) (i32.mul (local.get $i1) (local.get $rowb))))
        (local.set $j (i32.const 0))
        (block $jdone
          (loop $jl
            (br_if $jdone (i32.ge_u (local.get $j) (local.get $wide)))
            (local.set $s01 (v128.const i64x2 0 0))
            (local.set $s23 (v128.const i64x2 0 0))
            (local.set $p (i32.add (i32.add (local.get $x) (i32.mul (local.get $i0) (local.get $rowb))) (local.get $j)))
            (block $pdone
              (loop $pl
                (br_if $pdone (i32.ge_u (local.get $p) (local.get $end)))
                (local.set $v (v128.load (local.get $p)))
                (local.set $s01 (f64x2.add (local.get $s01) (f64x2.promote_low_f32x4 (local.get $v))))
                (local.set $s23 (f64x2.add (local.get $s23) (f64x2.promote_low_f32x4
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))))
                (local.set $p (i32.add (local.get $p) (local.get $rowb)))
                (br $pl)))
            (local.set $pa (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 1))))
            (v128.store (local.get $pa) (f64x2.add (v128.load (local.get $pa)) (local.get $s01)))
            (v128.store offset=16 (local.get $pa) (f64x2.add (v128.load offset=16 (local.get $pa)) (local.get $s23)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $jl)))
        (block $tdone
          (loop $tl
            (br_if $tdone (i32.ge_u (local.get $j) (local.get $rowb)))
            (local.set $sf (f64.const 0))
            (local.set $p (i32.add (i32.add (local.get $x) (i32.mul (local.get $i0) (local.get $rowb))) (local.get $j)))
            (block $qdone
              (loop $ql
                (br_if $qdone (i32.ge_u (local.get $p) (local.get $end)))
                (local.set $sf (f64.add (local.get $sf) (f64.promote_f32 (f32.load (local.get $p)))))
                (local.set $p (i32.add (local.get $p) (local.get $rowb)))
                (br $ql)))
            (local.set $pa (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 1))))
            (f64.store (local.get $pa) (f64.add (f64.load (local.get $pa)) (local.get $sf)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $tl)))
        (local.set $i0 (local.get $i1))
        (br $bl))))

  ;; rows rows of row bytes each, from src (contiguous) to dst with a row stride of stride bytes:
  ;; one input's part of a concatenation (memory.copy per row).
  (func (export "copy_rows") (param $src i32) (param $dst i32) (param $rows i32) (param $row i32)
    (param $stride i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $rows)))
        (memory.copy (local.get $dst) (local.get $src) (local.get $row))
        (local.set $src (i32.add (local.get $src) (local.get $row)))
        (local.set $dst (i32.add (local.get $dst) (local.get $stride)))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br $l))))

  ;; out[b, r, 0:8] = w[r, s_b : s_b + 8], s_b = min(8 b, co - 8): a [rows, co] matrix as ceil(co / 8)
  ;; contiguous column blocks [rows, 8] (the filter layout of conv2d). co >= 8.
  (func (export "pack8") (param $w i32) (param $out i32) (param $rows i32) (param $co i32)
    (local $corow i32) (local $o i32) (local $p i32) (local $end i32)
    (local.set $corow (i32.shl (local.get $co) (i32.const 2)))
    (local.set $o (i32.const 0))
    (block $odone
      (loop $ol
        (br_if $odone (i32.ge_u (local.get $o) (local.get $corow)))
        (local.set $p (i32.add (local.get $w) (select (local.get $o) (i32.sub (local.get $corow) (i32.const 32))
          (i32.le_u (i32.add (local.get $o) (i32.const 32)) (local.get $corow)))))
        (local.set $end (i32.add (local.get $p) (i32.mul (local.get $rows) (local.get $corow))))
        (block $rdone
          (loop $rl
            (br_if $rdone (i32.ge_u (local.get $p) (local.get $end)))
            (v128.store (local.get $out) (v128.load (local.get $p)))
            (v128.store offset=16 (local.get $out) (v128.load offset=16 (local.get $p)))
            (local.set $out (i32.add (local.get $out) (i32.const 32)))
            (local.set $p (i32.add (local.get $p) (local.get $corow)))
            (br $rl)))
        (local.set $o (i32.add (local.get $o) (i32.const 32)))
        (br $ol))))

  ;; out[b, r, j] = w[s_b + j, r], s_b = min(8 b, co - 8): a [co, rows] matrix transposed into conv2d's
  ;; filter layout (ceil(co / 8) blocks [rows, 8]), for products with a transposed right operand. co >= 8.
  (func (export "pack8t") (param $w i32) (param $out i32) (param $rows i32) (param $co i32)
    (local $rowb i32) (local $o i32) (local $r i32) (local $p i32) (local $j i32)
    (local.set $rowb (i32.shl (local.get $rows) (i32.const 2)))
    (local.set $o (i32.const 0))
    (block $odone
      (loop $ol
        (br_if $odone (i32.ge_u (local.get $o) (local.get $co)))
        (local.set $r (i32.const 0))
        (block $rdone
          (loop $rl
            (br_if $rdone (i32.ge_u (local.get $r) (local.get $rowb)))
            (local.set $p (i32.add (i32.add (local.get $w)
              (i32.mul
                (select (local.get $o) (i32.sub (local.get $co) (i32.const 8))
                  (i32.le_u (i32.add (local.get $o) (i32.const 8)) (local.get $co)))
                (local.get $rowb)))
              (local.get $r)))
            (local.set $j (i32.const 0))
            (block $jdone
              (loop $jl
                (br_if $jdone (i32.ge_u (local.get $j) (i32.const 32)))
                (f32.store (i32.add (local.get $out) (local.get $j)) (f32.load (local.get $p)))
                (local.set $p (i32.add (local.get $p) (local.get $rowb)))
                (local.set $j (i32.add (local.get $j) (i32.const 4)))
                (br $jl)))
            (local.set $out (i32.add (local.get $out) (i32.const 32)))
            (local.set $r (i32.add (local.get $r) (i32.const 4)))
            (br $rl)))
        (local.set $o (i32.add (local.get $o) (i32.const 8)))
        (br $ol))))
)
