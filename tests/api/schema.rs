//! The committed `schema.graphql` is exactly what the code generates.

/// `schema.graphql` matches `blogql print-schema`; regenerate it with
/// `cargo run -- print-schema > schema.graphql` when the API changes on purpose.
#[test]
fn schema_snapshot_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let committed = std::fs::read_to_string(path).expect("schema.graphql exists at the repo root");
    let generated = blogql::graphql::sdl();
    assert!(
        committed == generated,
        "schema.graphql is stale: run `cargo run -- print-schema > schema.graphql` and review the diff"
    );
}

/// The contract's names are present, so a rename cannot slip through a regenerated snapshot unnoticed.
#[test]
fn schema_keeps_the_contract_names() {
    let sdl = blogql::graphql::sdl();
    for needle in [
        "viewer: User",
        "user(id: ID!): User",
        "users(first: Int, after: String): UserConnection!",
        "post(id: ID!): Post",
        "posts(first: Int, after: String, authorId: ID): PostConnection!",
        "comment(id: ID!): Comment",
        "signUp(input: SignUpInput!): AuthPayload!",
        "logIn(input: LogInInput!): AuthPayload!",
        "createPost(input: CreatePostInput!): Post!",
        "updatePost(id: ID!, input: UpdatePostInput!): Post!",
        "deletePost(id: ID!): DeletePostPayload!",
        "createComment(input: CreateCommentInput!): Comment!",
        "deleteComment(id: ID!): DeleteCommentPayload!",
        "likePost(postId: ID!): Post!",
        "unlikePost(postId: ID!): Post!",
        "followUser(userId: ID!): FollowPayload!",
        "unfollowUser(userId: ID!): FollowPayload!",
        "deleteUser(id: ID!): DeleteUserPayload!",
        "viewerHasLiked: Boolean!",
        "detachedReferenceCount: Int!",
        "scalar DateTime",
    ] {
        assert!(sdl.contains(needle), "schema lacks `{needle}`");
    }
}
