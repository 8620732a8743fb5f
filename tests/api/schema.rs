//! The committed `schema.graphql` is exactly what the code generates, and the schema keeps its contract.

use serde_json::Value;

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
        "DeleteUserPayload.deletedPostIds(first: Int): [ID!]!".to_owned(),
        "DeleteUserPayload.deletedCommentIds(first: Int): [ID!]!".to_owned(),
        "DeleteUserPayload.affectedUsers(first: Int): [User!]!".to_owned(),
        "DeleteUserPayload.affectedPosts(first: Int): [Post!]!".to_owned(),
        "DeleteUserPayload.affectedUserCount: Int!".to_owned(),
        "DeleteUserPayload.affectedPostCount: Int!".to_owned(),
        "DeleteUserPayload.query: Query!".to_owned(),
        "DeletePostPayload.deletedCommentIds(first: Int): [ID!]!".to_owned(),
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

/// Every list-typed field of the served schemas (client and subgraph,
/// introspection included), found by introspecting them, has a length bound
/// in the cost model (`graphql::cost::LIST_FIELDS`), and the bound is real:
/// an argument bound names an argument the field has, a connection's edges
/// are only reached through fields taking `first` and `last`, introspection
/// lists are ones `limits::introspection` multiplies. So the next list field
/// cannot be added without a bound.
#[tokio::test]
async fn every_list_field_has_a_length_bound() {
    use blogql::graphql::cost::{ListBound, list_bound};
    const TYPE_REF: &str = "kind name ofType { kind name ofType { kind name ofType { kind name } } }";
    let query = format!(
        "{{ __schema {{ queryType {{ name }} types {{ name fields(includeDeprecated: true) {{ name args {{ name }} type {{ {TYPE_REF} }} }} }} }} }}"
    );
    let client = blogql::graphql::schema_builder().finish().execute(query.as_str()).await;
    let subgraph = blogql::graphql::subgraph_builder().finish().execute(query.as_str()).await;
    let mut lists = 0;
    for resp in [client, subgraph] {
        assert!(resp.errors.is_empty(), "{:?}", resp.errors);
        let schema = resp.data.into_json().expect("json");
        let types = schema["__schema"]["types"].as_array().expect("types");
        // The subgraph's root type is named FederatedQuery; the table names roots as the SDL does.
        let root = schema["__schema"]["queryType"]["name"].as_str().expect("query type").to_owned();
        let sdl_name = |name: &str| if name == root { "Query".to_owned() } else { name.to_owned() };
        // Which fields answer each named type, with their argument names.
        let mut answering: Vec<(String, String, Vec<String>)> = Vec::new();
        let named = |t: &Value| -> String {
            let mut t = t;
            while t["name"].is_null() && !t["ofType"].is_null() {
                t = &t["ofType"];
            }
            t["name"].as_str().unwrap_or_default().to_owned()
        };
        for ty in types {
            for field in ty["fields"].as_array().into_iter().flatten() {
                let args = field["args"].as_array().into_iter().flatten();
                let args: Vec<String> = args.filter_map(|a| a["name"].as_str().map(str::to_owned)).collect();
                answering.push((sdl_name(&named(&field["type"])), format!("{}.{}", ty["name"], field["name"]), args));
            }
        }
        for ty in types {
            let type_name = sdl_name(ty["name"].as_str().expect("type name"));
            let type_name = type_name.as_str();
            for field in ty["fields"].as_array().into_iter().flatten() {
                let name = field["name"].as_str().expect("field name");
                let mut t = &field["type"];
                let mut is_list = false;
                while !t.is_null() {
                    is_list |= t["kind"] == "LIST";
                    t = &t["ofType"];
                }
                if !is_list {
                    continue;
                }
                lists += 1;
                let bound = list_bound(type_name, name)
                    .unwrap_or_else(|| panic!("{type_name}.{name} is a list with no length bound in graphql::cost"));
                let args: Vec<&str> =
                    field["args"].as_array().into_iter().flatten().filter_map(|a| a["name"].as_str()).collect();
                match bound {
                    ListBound::Argument { name: arg, max } => {
                        assert!(args.contains(&arg), "{type_name}.{name} is bounded by `{arg}`, which it lacks");
                        assert!(max <= 1000, "{type_name}.{name}: a bound of {max}");
                    }
                    ListBound::ConnectionPage => {
                        let reached: Vec<_> = answering.iter().filter(|(t, _, _)| t == type_name).collect();
                        assert!(!reached.is_empty(), "{type_name} is answered by no field");
                        for (_, by, args) in reached {
                            assert!(
                                args.iter().any(|a| a == "first") && args.iter().any(|a| a == "last"),
                                "{by} answers {type_name} without first/last"
                            );
                        }
                    }
                    ListBound::Introspection => assert!(
                        type_name.starts_with("__") && blogql::limits::introspection::is_costed_list(name),
                        "{type_name}.{name} is not multiplied by limits::introspection"
                    ),
                    ListBound::Representations { max } => assert!(name == "_entities" && max <= 1000),
                }
            }
        }
    }
    assert!(lists >= 20, "found only {lists} list fields: the walk is not seeing the schema");
}
