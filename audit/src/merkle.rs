//! RFC 6962 / RFC 9162 Merkle trees: leaf and node hashing, the root of a log, inclusion proofs
//! and consistency proofs, with their verification.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The hash of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of `leaves` (leaf hashes), by the definition (RFC 6962 §2.1).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The roots of the perfect subtrees covering the leaves so far, largest first: appends and the
/// current root in O(log n) without keeping the leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// (height, hash), heights strictly decreasing.
    stack: Vec<(u32, Hash)>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(height, left)) = self.stack.last() {
            if height != node.0 {
                break;
            }
            self.stack.pop();
            node = (height + 1, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.size += 1;
    }

    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else { return empty_root() };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 6962 §2.1.1).
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    let mut path = Vec::new();
    path_into(index, leaves, &mut path);
    path
}

fn path_into(index: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if index < k {
        path_into(index, &leaves[..k], out);
        out.push(root(&leaves[k..]));
    } else {
        path_into(index - k, &leaves[k..], out);
        out.push(root(&leaves[..k]));
    }
}

/// The leaf ranges `[start, end)` whose subtree roots make the audit path of leaf `index` in the
/// tree of `size` leaves, in the path's order (the same recursion as [`inclusion_proof`]).
fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let (mut lo, mut hi) = (0, size);
    let mut ranges = Vec::new();
    while hi - lo > 1 {
        let k = split((hi - lo) as usize) as u64;
        if index < lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    // Found top-down; the path runs from the leaf up.
    ranges.reverse();
    ranges
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves, built from the
/// leaves as they are read in order ([`StreamedProof::push`]): memory logarithmic in `size`, so
/// a proof from a log of any length needs no more than its verification does.
#[derive(Debug)]
pub struct StreamedProof {
    index: u64,
    /// The path's subtrees, in the path's order; disjoint.
    ranges: Vec<(u64, u64)>,
    roots: Vec<Option<Hash>>,
    /// `ranges`' places ordered by start, and how many of them were begun.
    by_start: Vec<usize>,
    begun: usize,
    /// The range being read (its place in `ranges`) and its leaves so far.
    current: Option<(usize, Frontier)>,
    /// Every leaf pushed: the root the path must lead to.
    whole: Frontier,
    size: u64,
}

impl StreamedProof {
    /// `None` when `index` is not below `size`.
    pub fn new(index: u64, size: u64) -> Option<StreamedProof> {
        if index >= size {
            return None;
        }
        let ranges = inclusion_ranges(index, size);
        let mut by_start: Vec<usize> = (0..ranges.len()).collect();
        by_start.sort_by_key(|&place| ranges[place].0);
        let roots = vec![None; ranges.len()];
        Some(StreamedProof { index, ranges, roots, by_start, begun: 0, current: None, whole: Frontier::default(), size })
    }

    /// Leaves still wanted: pushing stops at `size`.
    pub fn wants_more(&self) -> bool {
        self.whole.size() < self.size
    }

    /// The next leaf's hash, in order from leaf 0.
    pub fn push(&mut self, leaf: Hash) {
        let at = self.whole.size();
        self.whole.push(leaf);
        if at == self.index {
            return;
        }
        if self.current.is_none() {
            let place = self.by_start[self.begun];
            debug_assert_eq!(self.ranges[place].0, at, "the ranges cover every leaf but the index");
            self.begun += 1;
            self.current = Some((place, Frontier::default()));
        }
        let (place, frontier) = self.current.as_mut().expect("begun above");
        frontier.push(leaf);
        if at + 1 == self.ranges[*place].1 {
            self.roots[*place] = Some(frontier.root());
            self.current = None;
        }
    }

    /// The path and the root of the `size` leaves; `None` until all of them were pushed.
    pub fn finish(self) -> Option<(Vec<Hash>, Hash)> {
        if self.wants_more() {
            return None;
        }
        let path = self.roots.into_iter().collect::<Option<Vec<Hash>>>()?;
        Some((path, self.whole.root()))
    }
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// The consistency proof between the tree of the first `old_size` leaves and the tree of all
/// `leaves` (RFC 6962 §2.1.2).
pub fn consistency_proof(old_size: usize, leaves: &[Hash]) -> Vec<Hash> {
    let mut proof = Vec::new();
    if old_size > 0 && old_size < leaves.len() {
        subproof(old_size, leaves, true, &mut proof);
    }
    proof
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2).
pub fn verify_consistency(old_size: u64, new_size: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    let mut proof: Vec<Hash> = proof.to_vec();
    if old_size.is_power_of_two() {
        proof.insert(0, *old_root);
    }
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let Some((first, rest)) = proof.split_first() else { return false };
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *old_root && sr == *new_root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    #[test]
    fn frontier_matches_the_definition() {
        let all = leaves(70);
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), empty_root());
        for (i, leaf) in all.iter().enumerate() {
            frontier.push(*leaf);
            assert_eq!(frontier.root(), root(&all[..=i]), "size {}", i + 1);
        }
    }

    #[test]
    fn a_streamed_proof_is_the_proof_of_the_definition() {
        let all = leaves(70);
        for size in 1..=all.len() {
            for index in 0..size {
                let mut streamed = StreamedProof::new(index as u64, size as u64).unwrap();
                for leaf in &all[..size] {
                    assert!(streamed.wants_more());
                    streamed.push(*leaf);
                }
                assert!(!streamed.wants_more());
                let (path, tree_root) = streamed.finish().unwrap();
                assert_eq!(path, inclusion_proof(index, &all[..size]), "index {index} of {size}");
                assert_eq!(tree_root, root(&all[..size]));
            }
        }
        assert!(StreamedProof::new(3, 3).is_none());
        let mut short = StreamedProof::new(0, 4).unwrap();
        short.push(all[0]);
        assert!(short.finish().is_none(), "not all leaves pushed");
    }

    #[test]
    fn proofs_verify_and_reject_tampering() {
        let all = leaves(13);
        let r = root(&all);
        for i in 0..all.len() {
            let proof = inclusion_proof(i, &all);
            assert!(verify_inclusion(i as u64, 13, &all[i], &proof, &r));
            assert!(!verify_inclusion(i as u64, 13, &all[(i + 1) % 13], &proof, &r));
        }
        for m in 1..=13 {
            let proof = consistency_proof(m, &all);
            assert!(verify_consistency(m as u64, 13, &root(&all[..m]), &r, &proof), "m={m}");
            if m < 13 {
                assert!(!verify_consistency(m as u64, 13, &root(&all[1..=m]), &r, &proof));
            }
        }
    }
}
