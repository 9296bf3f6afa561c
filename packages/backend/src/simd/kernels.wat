;; Fused training kernels for the tfjs wasm backend, in WebAssembly SIMD (128-bit, f32x4 / f64x2).
;;
;; The module has no memory of its own: it imports the tfjs wasm backend's memory (its heap) and
;; works on tensors in place, given their byte offsets. It allocates nothing and keeps no state.
;; The math of each function is documented in the TypeScript module that calls it:
;;   group-norm.ts   gn_sums, gn_affine, gn_backward1, gn_backward2, mul
;;   adam.ts         adam
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
)
