fn main() {
    std::process::exit(openshell_supervisor::shim::main());
}
