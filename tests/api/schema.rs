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

/// `subgraph.graphql` matches `blogql print-schema --federation`, and the
/// client schema carries none of Federation's fields or types.
#[test]
fn subgraph_snapshot_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/subgraph.graphql");
    let committed = std::fs::read_to_string(path).expect("subgraph.graphql exists at the repo root");
    assert!(
        committed == blogql::graphql::subgraph_sdl(),
        "subgraph.graphql is stale: run `cargo run -- print-schema --federation > subgraph.graphql`"
    );
    for ty in ["User", "Post", "Comment"] {
        assert!(committed.contains(&format!("type {ty} implements Node @key(fields: \"id\")")), "{ty} lacks @key");
    }
    assert!(committed.contains("https://specs.apollo.dev/federation/v2"));
    let client = blogql::graphql::sdl();
    for federation_only in ["_entities", "_service", "_Any", "@key"] {
        assert!(!client.contains(federation_only), "the client schema mentions {federation_only}");
    }
}

/// Every field of the SDL as a one-line signature (`Type.field(arg: T, ...): R`),
/// descriptions dropped, so the contract can be checked whatever the layout.
fn signatures(sdl: &str) -> Vec<String> {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let doc = async_graphql::parser::parse_schema(sdl).expect("the SDL parses");
    let mut out = Vec::new();
    for def in doc.definitions {
        let TypeSystemDefinition::Type(ty) = def else { continue };
        let ty = ty.node;
        let fields = match &ty.kind {
            TypeKind::Object(o) => &o.fields,
            TypeKind::Interface(i) => &i.fields,
            _ => continue,
        };
        for field in fields {
            let f = &field.node;
            let args: Vec<String> =
                f.arguments.iter().map(|a| format!("{}: {}", a.node.name.node, a.node.ty.node)).collect();
            let args = if args.is_empty() { String::new() } else { format!("({})", args.join(", ")) };
            out.push(format!("{}.{}{}: {}", ty.name.node, f.name.node, args, f.ty.node));
        }
    }
    out
}

/// The contract's fields are present with their exact signatures, so a rename
/// or a changed argument cannot slip through a regenerated snapshot unnoticed.
#[test]
fn schema_keeps_the_contract_names() {
    let sdl = blogql::graphql::sdl();
    let sigs = signatures(&sdl);
    const PAGE: &str = "first: Int, after: String, last: Int, before: String";
    for needle in [
        "Query.viewer: User".to_owned(),
        "Query.user(id: ID!): User".to_owned(),
        format!("Query.users({PAGE}): UserConnection!"),
        "Query.post(id: ID!): Post".to_owned(),
        format!("Query.posts({PAGE}, authorId: ID): PostConnection!"),
        "Query.comment(id: ID!): Comment".to_owned(),
        "Query.node(id: ID!): Node".to_owned(),
        "Query.nodes(ids: [ID!]!): [Node]!".to_owned(),
        "Mutation.signUp(input: SignUpInput!): AuthPayload!".to_owned(),
        "Mutation.logIn(input: LogInInput!): AuthPayload!".to_owned(),
        "Mutation.createPost(input: CreatePostInput!): Post!".to_owned(),
        "Mutation.updatePost(id: ID!, input: UpdatePostInput!): Post!".to_owned(),
        "Mutation.deletePost(id: ID!, expectedPlan: String): DeletePostPayload!".to_owned(),
        "Mutation.createComment(input: CreateCommentInput!): Comment!".to_owned(),
        "Mutation.deleteComment(id: ID!): DeleteCommentPayload!".to_owned(),
        "Mutation.likePost(postId: ID!): Post!".to_owned(),
        "Mutation.unlikePost(postId: ID!): Post!".to_owned(),
        "Mutation.followUser(userId: ID!): FollowPayload!".to_owned(),
        "Mutation.unfollowUser(userId: ID!): FollowPayload!".to_owned(),
        "Mutation.deleteUser(id: ID!, expectedPlan: String): DeleteUserPayload!".to_owned(),
        "Query.deleteUserPreview(id: ID!): DeletionPlan!".to_owned(),
        "Query.deletePostPreview(id: ID!): DeletionPlan!".to_owned(),
        "DeletionPlan.planToken: String!".to_owned(),
        "DeletionPlan.detachedReferenceCount: Int!".to_owned(),
        "Post.viewerHasLiked: Boolean!".to_owned(),
        format!("Post.comments({PAGE}): CommentConnection!"),
        format!("Post.likedBy({PAGE}): UserConnection!"),
        format!("User.posts({PAGE}): PostConnection!"),
        format!("User.comments({PAGE}): CommentConnection!"),
        format!("User.followers({PAGE}): UserConnection!"),
        format!("User.following({PAGE}): UserConnection!"),
        "UserConnection.totalCount: Int!".to_owned(),
        "PostConnection.totalCount: Int!".to_owned(),
        "CommentConnection.totalCount: Int!".to_owned(),
        "PageInfo.startCursor: String".to_owned(),
        "PageInfo.hasPreviousPage: Boolean!".to_owned(),
        "DeleteUserPayload.detachedReferenceCount: Int!".to_owned(),
        "DeleteUserPayload.deletedPostIds: [ID!]!".to_owned(),
        "DeleteUserPayload.deletedCommentIds: [ID!]!".to_owned(),
        "DeleteUserPayload.affectedUsers: [User!]!".to_owned(),
        "DeleteUserPayload.affectedPosts: [Post!]!".to_owned(),
        "DeleteUserPayload.query: Query!".to_owned(),
        "DeletePostPayload.deletedCommentIds: [ID!]!".to_owned(),
        "DeletePostPayload.author: User".to_owned(),
        "DeletePostPayload.query: Query!".to_owned(),
        "DeleteCommentPayload.post: Post".to_owned(),
        "DeleteCommentPayload.query: Query!".to_owned(),
        "FollowPayload.follower: User!".to_owned(),
        "FollowPayload.followee: User!".to_owned(),
        "Node.id: ID!".to_owned(),
    ] {
        assert!(sigs.contains(&needle), "schema lacks `{needle}`");
    }
    for needle in
        ["scalar DateTime", "type User implements Node", "type Post implements Node", "type Comment implements Node"]
    {
        assert!(sdl.contains(needle), "schema lacks `{needle}`");
    }
}
