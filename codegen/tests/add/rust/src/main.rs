fn main() {
    println!("{}", notes::count("a b").len());
}
