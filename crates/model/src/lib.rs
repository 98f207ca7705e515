//! Types of plumb's state: Applications, AppProjects, resource keys and statuses (no I/O).
